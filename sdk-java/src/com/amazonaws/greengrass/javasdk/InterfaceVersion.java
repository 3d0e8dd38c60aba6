package com.amazonaws.greengrass.javasdk;

/** The version of the SDK interface this implementation provides. */
public final class InterfaceVersion {
    public static final String INTERFACE_VERSION = "1.5";

    private InterfaceVersion() {
    }
}
