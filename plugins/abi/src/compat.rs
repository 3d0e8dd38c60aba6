//! Loading a plugin built against any 1.x version of this ABI.
//!
//! abi_stable's own check (`LibHeader::init_root_module`) accepts a library
//! whose root module has at least the fields the loader declares: it lets a
//! newer plugin into an older core, but refuses a plugin built against an
//! older minor version, whose module lacks the fields added since. ggcore's
//! rule is that a core loads every plugin of its major version, so a plugin
//! older than this crate is checked the other way round: everything it was
//! built with must exist, unchanged, in this version, where the prefix types
//! (the root module, the `Host` and `Instance` tables) may have grown at
//! their ends. Fields it lacks then read as `None` through their accessors,
//! and methods its tables lack run their default bodies.

use abi_stable::abi_stability::abi_checking::exported_check_layout_compatibility;
use abi_stable::library::{LibHeader, LibraryError, RootModule};
use abi_stable::sabi_types::VersionNumber;
use abi_stable::StableAbi;

use crate::PluginModRef;

/// How a plugin built against ABI `plugin` is checked by a core of ABI `core`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// abi_stable's check: same major version, the plugin as new as the core
    /// or newer (or a major version the core refuses, with both named).
    Standard,
    /// The plugin is older than the core within the same major version: what
    /// it knows must be a prefix of what the core knows.
    OlderPlugin,
}

/// Which check applies (ABI versions from 1.0 on; 0.x versions follow
/// abi_stable's rules).
pub fn check_for(plugin: VersionNumber, core: VersionNumber) -> Check {
    if plugin.major >= 1 && plugin.major == core.major && plugin.minor < core.minor {
        Check::OlderPlugin
    } else {
        Check::Standard
    }
}

/// Checks a plugin library's version and layout against this crate's and
/// returns its root module: [`Check::Standard`] as abi_stable does it,
/// [`Check::OlderPlugin`] with the layouts compared the other way round.
pub fn init_plugin(header: &'static LibHeader) -> Result<PluginModRef, LibraryError> {
    let core = VersionNumber::new(<PluginModRef as RootModule>::VERSION_STRINGS)?;
    let plugin = VersionNumber::new(header.version_strings())?;
    let Some(plugin_layout) = header.layout() else {
        // A library exported without its layout is not checked either way.
        return header.init_root_module::<PluginModRef>();
    };
    if check_for(plugin, core) == Check::Standard {
        return header.init_root_module::<PluginModRef>();
    }
    exported_check_layout_compatibility(plugin_layout, <PluginModRef as StableAbi>::LAYOUT)
        .into_result()
        .map_err(|e| LibraryError::AbiInstability(e.to_formatted_error()))?;
    // SAFETY: the plugin's root module layout was just checked to be a prefix
    // of ours: every field and table method it has matches ours, and what it
    // lacks is only read through accessors that find it missing (`None` for
    // module fields, the default body for table methods).
    unsafe { header.init_root_module_with_unchecked_layout::<PluginModRef>() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(major: u32, minor: u32) -> VersionNumber {
        VersionNumber { major, minor, patch: 0 }
    }

    #[test]
    fn older_minor_plugins_are_checked_the_other_way_round() {
        assert_eq!(check_for(v(1, 0), v(1, 1)), Check::OlderPlugin);
        assert_eq!(check_for(v(1, 3), v(1, 7)), Check::OlderPlugin);
        assert_eq!(check_for(v(1, 1), v(1, 1)), Check::Standard);
        assert_eq!(check_for(v(1, 2), v(1, 1)), Check::Standard, "a newer plugin: abi_stable's own rule");
        assert_eq!(check_for(v(2, 0), v(1, 1)), Check::Standard, "another major: refused with both versions named");
        assert_eq!(check_for(v(0, 1), v(0, 2)), Check::Standard);
    }
}
