// The version every binary prints: see packaging/version.rs.
include!("../packaging/version.rs");
