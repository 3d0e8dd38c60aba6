package com.amazonaws.greengrass.javasdk.model;

/** Whether an invoke waits for the result. */
public enum InvocationType {
    /** Asynchronous: the core queues the request and the response has no payload. */
    Event,
    /** Synchronous: the response carries the function's result. */
    RequestResponse
}
