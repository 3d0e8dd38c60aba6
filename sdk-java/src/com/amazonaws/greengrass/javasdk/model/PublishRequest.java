package com.amazonaws.greengrass.javasdk.model;

import java.nio.ByteBuffer;

/** A message for a topic, routed by the group's subscriptions. */
public class PublishRequest {
    private String topic;
    private ByteBuffer payload;
    private QueueFullPolicy queueFullPolicy;

    public PublishRequest() {
    }

    public String getTopic() {
        return topic;
    }

    public void setTopic(String topic) {
        this.topic = topic;
    }

    public ByteBuffer getPayload() {
        return payload;
    }

    public void setPayload(ByteBuffer payload) {
        this.payload = payload;
    }

    public QueueFullPolicy getQueueFullPolicy() {
        return queueFullPolicy;
    }

    public void setQueueFullPolicy(QueueFullPolicy queueFullPolicy) {
        this.queueFullPolicy = queueFullPolicy;
    }

    public PublishRequest withTopic(String topic) {
        setTopic(topic);
        return this;
    }

    public PublishRequest withPayload(ByteBuffer payload) {
        setPayload(payload);
        return this;
    }

    public PublishRequest withQueueFullPolicy(QueueFullPolicy queueFullPolicy) {
        setQueueFullPolicy(queueFullPolicy);
        return this;
    }
}
