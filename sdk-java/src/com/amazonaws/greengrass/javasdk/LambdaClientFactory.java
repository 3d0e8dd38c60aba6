package com.amazonaws.greengrass.javasdk;

/** Builds {@link LambdaClient}s. */
public class LambdaClientFactory implements ClientFactory {
    public LambdaClientFactory() {
    }

    @Override
    public LambdaClient build() {
        return new LambdaClient();
    }
}
