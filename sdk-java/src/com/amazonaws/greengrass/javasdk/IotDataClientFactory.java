package com.amazonaws.greengrass.javasdk;

/** Builds {@link IotDataClient}s. */
public class IotDataClientFactory implements ClientFactory {
    public IotDataClientFactory() {
    }

    @Override
    public IotDataClient build() {
        return new IotDataClient();
    }
}
