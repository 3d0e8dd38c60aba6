package com.amazonaws.greengrass.javasdk;

/** Builds a client. */
public interface ClientFactory {
    GGClient build();
}
