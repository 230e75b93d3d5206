"""Storage-manager plug-ins; never imports hostagent."""
