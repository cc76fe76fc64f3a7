//! DHCPv4 client (not built yet).
