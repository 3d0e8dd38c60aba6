package com.amazonaws.greengrass.javasdk;

/** What the client factories build. */
abstract class GGClient {
    GGClient() {
    }
}
