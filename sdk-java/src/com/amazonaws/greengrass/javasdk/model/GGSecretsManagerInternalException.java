package com.amazonaws.greengrass.javasdk.model;

/** The secrets service failed. */
public class GGSecretsManagerInternalException extends Exception {
    private static final long serialVersionUID = 1L;

    public GGSecretsManagerInternalException(String message) {
        super(message);
    }

    public GGSecretsManagerInternalException(String message, Throwable cause) {
        super(message, cause);
    }
}
