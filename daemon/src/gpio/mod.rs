//! The board's status LED and physical privacy switch. The logic (LED patterns per device state,
//! a debounced switch that holds capture off) runs against two small traits; the Raspberry Pi
//! implementation (`rppal`, feature `rpi`) sits behind them and the tests use fakes.
//!
//! Timing uses tokio's clock, whose paused test mode makes the blink patterns exactly testable;
//! `embassy-time` would add a second clock without making anything simpler here.

pub mod led;
pub mod privacy_switch;
#[cfg(feature = "rpi")]
pub mod rpi;
pub mod status;

/// An output pin driving an LED.
pub trait Led: Send {
    fn set(&mut self, on: bool);
}

/// An input pin: whether the switch is in its "privacy" position.
pub trait SwitchInput: Send {
    fn is_on(&mut self) -> bool;
}

impl<T: Led + ?Sized> Led for Box<T> {
    fn set(&mut self, on: bool) {
        (**self).set(on)
    }
}

impl<T: SwitchInput + ?Sized> SwitchInput for Box<T> {
    fn is_on(&mut self) -> bool {
        (**self).is_on()
    }
}

/// The pins `[gpio]` asks for, opened.
#[derive(Default)]
pub struct Pins {
    pub led: Option<Box<dyn Led>>,
    pub privacy_switch: Option<Box<dyn SwitchInput>>,
}

/// Open the configured pins (none unless `gpio.enabled`).
pub fn open(config: &crate::config::GpioConfig) -> anyhow::Result<Pins> {
    if !config.enabled {
        return Ok(Pins::default());
    }
    #[cfg(feature = "rpi")]
    {
        let led = match config.led_pin {
            Some(pin) => Some(Box::new(rpi::PiLed::open(pin, config.led_active_low)?) as Box<dyn Led>),
            None => None,
        };
        let privacy_switch = match config.privacy_switch_pin {
            Some(pin) => Some(Box::new(rpi::PiSwitch::open(pin, config.privacy_switch_active_low)?) as Box<dyn SwitchInput>),
            None => None,
        };
        Ok(Pins { led, privacy_switch })
    }
    #[cfg(not(feature = "rpi"))]
    anyhow::bail!("gpio.enabled: this veil was built without GPIO support (cargo build --features rpi)")
}
