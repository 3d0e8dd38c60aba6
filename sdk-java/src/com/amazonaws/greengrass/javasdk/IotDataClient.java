package com.amazonaws.greengrass.javasdk;

import com.amazonaws.greengrass.javasdk.model.DeleteThingShadowRequest;
import com.amazonaws.greengrass.javasdk.model.DeleteThingShadowResult;
import com.amazonaws.greengrass.javasdk.model.GGIotDataException;
import com.amazonaws.greengrass.javasdk.model.GGLambdaException;
import com.amazonaws.greengrass.javasdk.model.GetThingShadowRequest;
import com.amazonaws.greengrass.javasdk.model.GetThingShadowResult;
import com.amazonaws.greengrass.javasdk.model.InvalidIotDataRequestException;
import com.amazonaws.greengrass.javasdk.model.PublishRequest;
import com.amazonaws.greengrass.javasdk.model.PublishResult;
import com.amazonaws.greengrass.javasdk.model.UpdateThingShadowRequest;
import com.amazonaws.greengrass.javasdk.model.UpdateThingShadowResult;
import com.ggcore.runtime.Bytes;
import com.ggcore.runtime.Host;
import com.ggcore.runtime.HostException;

import java.nio.ByteBuffer;

/**
 * Publishes messages and works with the core's local shadows. A shadow call returns the shadow service's
 * response document whether the request was accepted or rejected (read it to tell); an exception means the
 * core refused the request itself.
 */
public class IotDataClient extends GGClient {
    public IotDataClient() {
    }

    /** Kept for source compatibility with the published SDK; the Lambda client is not needed. */
    public IotDataClient(LambdaClient lambdaClient) {
    }

    public GetThingShadowResult getThingShadow(GetThingShadowRequest request) throws GGIotDataException {
        required(request, "Request");
        String thing = required(request.getThingName(), "Thing Name");
        GetThingShadowResult result = new GetThingShadowResult();
        result.setPayload(ByteBuffer.wrap(shadow("get", thing, new byte[0])));
        return result;
    }

    public UpdateThingShadowResult updateThingShadow(UpdateThingShadowRequest request) throws GGIotDataException {
        required(request, "Request");
        String thing = required(request.getThingName(), "Thing Name");
        ByteBuffer payload = required(request.getPayload(), "Payload");
        UpdateThingShadowResult result = new UpdateThingShadowResult();
        result.setPayload(ByteBuffer.wrap(shadow("update", thing, Bytes.of(payload))));
        return result;
    }

    public DeleteThingShadowResult deleteThingShadow(DeleteThingShadowRequest request) throws GGIotDataException {
        required(request, "Request");
        String thing = required(request.getThingName(), "Thing Name");
        DeleteThingShadowResult result = new DeleteThingShadowResult();
        result.setPayload(ByteBuffer.wrap(shadow("delete", thing, new byte[0])));
        return result;
    }

    /** Publishes; the queue-full policy defaults to the core's (BestEffort). */
    public PublishResult publish(PublishRequest request) throws GGIotDataException, GGLambdaException {
        required(request, "Request");
        String topic = required(request.getTopic(), "Topic");
        ByteBuffer payload = required(request.getPayload(), "Payload");
        String policy = request.getQueueFullPolicy() == null ? "" : request.getQueueFullPolicy().toString();
        try {
            Host.api.publish(topic, Bytes.of(payload), policy);
        } catch (HostException e) {
            throw translate(e);
        }
        return new PublishResult();
    }

    private static byte[] shadow(String operation, String thing, byte[] payload) throws GGIotDataException {
        byte[] response;
        try {
            response = Host.api.shadow(operation, thing, payload);
        } catch (HostException e) {
            throw translate(e);
        }
        return response == null ? new byte[0] : response;
    }

    private static GGIotDataException translate(HostException e) {
        return e.isInvalidRequest() ? new InvalidIotDataRequestException(e.describe(), e)
                : new GGIotDataException(e.describe(), e);
    }

    private static <T> T required(T value, String name) throws InvalidIotDataRequestException {
        if (value == null || (value instanceof String && ((String) value).isEmpty())) {
            throw new InvalidIotDataRequestException(name + " is a required parameter");
        }
        return value;
    }
}
