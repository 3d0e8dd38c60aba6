package com.amazonaws.greengrass.javasdk.model;

/** What a publish does when the core's queue for the destination is full. */
public enum QueueFullPolicy {
    /** Deliver to the destinations that have room. */
    BestEffort("BestEffort"),
    /** Deliver to all destinations or fail the publish (the wire name is "AllOrError"). */
    AllOrException("AllOrError");

    private final String wireName;

    QueueFullPolicy(String wireName) {
        this.wireName = wireName;
    }

    /** The name the core understands: "BestEffort" or "AllOrError". */
    @Override
    public String toString() {
        return wireName;
    }
}
