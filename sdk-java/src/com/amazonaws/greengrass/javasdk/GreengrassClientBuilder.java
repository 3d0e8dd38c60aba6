package com.amazonaws.greengrass.javasdk;

/** Entry point to the clients: {@code GreengrassClientBuilder.iotDataClient().build()}. */
public final class GreengrassClientBuilder {
    private GreengrassClientBuilder() {
    }

    public static IotDataClientFactory iotDataClient() {
        return new IotDataClientFactory();
    }

    public static LambdaClientFactory lambdaClient() {
        return new LambdaClientFactory();
    }

    public static SecretsManagerClientFactory secretsManagerClient() {
        return new SecretsManagerClientFactory();
    }
}
