package com.amazonaws.greengrass.javasdk.model;

/** A publish the core accepted. */
public class PublishResult {
    public PublishResult() {
    }
}
