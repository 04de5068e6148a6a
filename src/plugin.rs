//! What one plugin configuration makes of the `.wasm`: the gateway, or the
//! token charger (see [`crate::charger`]). Read once per VM, in the root
//! context's `on_configure`; an invalid configuration is refused with one
//! clear log line, and Envoy keeps the VM from serving (fail closed).

use crate::charger::{self, Charger, ChargerConfig};
use crate::config::{ConfigError, Gateway};
use log::info;

/// A configured plugin.
#[derive(Debug)]
pub enum Plugin {
    Gateway(Box<Gateway>),
    Charger(Charger),
}

/// Why a configuration cannot run.
#[derive(Debug)]
pub enum PluginError {
    Gateway(ConfigError),
    Charger(serde_json::Error),
}

impl std::fmt::Display for PluginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PluginError::Gateway(e) => {
                write!(f, "invalid plugin configuration, not loaded: {e}")
            }
            PluginError::Charger(e) => {
                write!(f, "invalid token charger configuration, not loaded: {e}")
            }
        }
    }
}

impl std::error::Error for PluginError {}

/// The plugin the configuration describes, or why it cannot run.
pub fn configure(bytes: &[u8]) -> Result<Plugin, PluginError> {
    if charger::is_charger_config(bytes) {
        let config =
            serde_json::from_slice::<ChargerConfig>(bytes).map_err(PluginError::Charger)?;
        info!(
            "openai-gateway: token charger for header {}",
            config.token_charger.header
        );
        return Ok(Plugin::Charger(config.token_charger));
    }
    let gateway = Gateway::try_from(bytes).map_err(PluginError::Gateway)?;
    info!(
        "openai-gateway: configured {} models, {} API keys",
        gateway.catalog.len(),
        gateway.keys.len()
    );
    Ok(Plugin::Gateway(Box::new(gateway)))
}
