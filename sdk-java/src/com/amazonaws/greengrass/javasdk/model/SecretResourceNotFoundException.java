package com.amazonaws.greengrass.javasdk.model;

/** No such secret (or version) on the core. */
public class SecretResourceNotFoundException extends GGSecretsManagerException {
    private static final long serialVersionUID = 1L;

    public SecretResourceNotFoundException(String message) {
        super(message);
    }

    public SecretResourceNotFoundException(String message, Throwable cause) {
        super(message, cause);
    }
}
