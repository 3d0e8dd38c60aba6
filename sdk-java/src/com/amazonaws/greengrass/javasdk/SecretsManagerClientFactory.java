package com.amazonaws.greengrass.javasdk;

/** Builds {@link SecretsManagerClient}s. */
public class SecretsManagerClientFactory implements ClientFactory {
    public SecretsManagerClientFactory() {
    }

    @Override
    public SecretsManagerClient build() {
        return new SecretsManagerClient();
    }
}
