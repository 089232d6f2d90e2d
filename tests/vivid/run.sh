#!/usr/bin/env bash
# Boots Debian's kernel in qemu (software emulation) with an initramfs holding the vivid virtual
# camera driver and camera/examples/vivid_guest.rs, a static build of veil's V4L2 capture code.
# Passes when the guest prints "VIVID PASS". Needs linux-image-amd64, qemu-system-x86,
# busybox-static (`make vivid-deps`); fails, never skips, without them.
set -euo pipefail
cd "$(dirname "$0")/../.."
WORK=target/vivid
KERNEL=$(ls /boot/vmlinuz-* 2>/dev/null | sort -V | tail -1 || true)
[ -n "$KERNEL" ] || { echo "vivid test: no /boot/vmlinuz-* (install linux-image-amd64)" >&2; exit 1; }
KVER=${KERNEL#/boot/vmlinuz-}
for tool in qemu-system-x86_64 busybox modprobe cpio; do
  command -v $tool >/dev/null || [ -x /bin/$tool ] || [ -x /sbin/$tool ] \
    || { echo "vivid test: $tool missing" >&2; exit 1; }
done
BUSYBOX=$(command -v busybox || echo /bin/busybox)
file -L "$BUSYBOX" 2>/dev/null | grep -q 'statically linked' || [ -x /bin/busybox ] \
  || { echo "vivid test: need busybox-static" >&2; exit 1; }

echo "vivid test: building the static guest binary"
# (Without the GStreamer sources: GStreamer links only dynamically, the guest is static.)
RUSTFLAGS="-C target-feature=+crt-static" ${CARGO:-cargo} build -q --example vivid_guest -p veil-camera \
  --no-default-features --target x86_64-unknown-linux-gnu --target-dir $WORK/build
GUEST=$WORK/build/x86_64-unknown-linux-gnu/debug/examples/vivid_guest

ROOT=$WORK/root
rm -rf "$ROOT" && mkdir -p "$ROOT"/{bin,dev,proc,sys,modules}
cp "$BUSYBOX" "$ROOT/bin/busybox"
for applet in sh mount insmod rmmod sleep poweroff cat echo ls; do ln -s busybox "$ROOT/bin/$applet"; done
: > "$ROOT/modules/order"
modprobe -S "$KVER" --show-depends vivid | awk '$1 == "insmod" {print $2}' | while read -r ko; do
  name=$(basename "$ko"); name=${name%%.ko*}
  case "$ko" in
    *.ko.xz) xz -dc "$ko" > "$ROOT/modules/$name.ko" ;;
    *.ko.zst) zstd -qdc "$ko" > "$ROOT/modules/$name.ko" ;;
    *.ko.gz) gzip -dc "$ko" > "$ROOT/modules/$name.ko" ;;
    *) cp "$ko" "$ROOT/modules/$name.ko" ;;
  esac
  echo "$name" >> "$ROOT/modules/order"
done
grep -qx vivid "$ROOT/modules/order" || { echo "vivid test: kernel $KVER has no vivid module" >&2; exit 1; }
cp "$GUEST" "$ROOT/vivid_guest"
cat > "$ROOT/init" <<'INIT'
#!/bin/sh
mount -t devtmpfs none /dev
exec </dev/console >/dev/console 2>&1
mount -t proc none /proc
mount -t sysfs none /sys
for m in $(cat /modules/order); do insmod /modules/$m.ko || echo "insmod $m failed"; done
i=0
while [ ! -e /dev/video0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
/vivid_guest /modules
poweroff -f
INIT
chmod +x "$ROOT/init"
(cd "$ROOT" && find . | cpio -o -H newc --quiet | gzip -1) > $WORK/initrd.gz

echo "vivid test: booting $KERNEL under qemu (tcg)"
LOG=$WORK/console.log
timeout 300 qemu-system-x86_64 -accel tcg -m 512 -nographic -no-reboot -net none \
  -kernel "$KERNEL" -initrd $WORK/initrd.gz -append 'console=ttyS0 quiet panic=-1' </dev/null > "$LOG" 2>&1 || true
grep -E 'VIVID|opened|frames|refused|missing device|lost|replug|pressed|capture devices' "$LOG" || true
if grep -q 'VIVID PASS' "$LOG"; then
  echo "vivid test: PASS"
else
  echo "vivid test: FAIL (console log: $LOG)" >&2
  tail -30 "$LOG" >&2
  exit 1
fi
