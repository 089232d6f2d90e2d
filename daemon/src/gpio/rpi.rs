//! The Raspberry Pi's GPIO through `rppal` (BCM pin numbers).

use rppal::gpio::{Gpio, InputPin, OutputPin};

use super::{Led, SwitchInput};

pub struct PiLed {
    pin: OutputPin,
    active_low: bool,
}

impl PiLed {
    pub fn open(bcm: u8, active_low: bool) -> anyhow::Result<Self> {
        let pin = Gpio::new()?.get(bcm).map_err(|e| anyhow::anyhow!("gpio.led_pin {bcm}: {e}"))?.into_output();
        Ok(Self { pin, active_low })
    }
}

impl Led for PiLed {
    fn set(&mut self, on: bool) {
        if on != self.active_low {
            self.pin.set_high();
        } else {
            self.pin.set_low();
        }
    }
}

pub struct PiSwitch {
    pin: InputPin,
    active_low: bool,
}

impl PiSwitch {
    /// An active-low switch gets the internal pull-up (it closes to ground), else the pull-down.
    pub fn open(bcm: u8, active_low: bool) -> anyhow::Result<Self> {
        let pin = Gpio::new()?.get(bcm).map_err(|e| anyhow::anyhow!("gpio.privacy_switch_pin {bcm}: {e}"))?;
        let pin = if active_low { pin.into_input_pullup() } else { pin.into_input_pulldown() };
        Ok(Self { pin, active_low })
    }
}

impl SwitchInput for PiSwitch {
    fn is_on(&mut self) -> bool {
        self.pin.is_high() != self.active_low
    }
}
