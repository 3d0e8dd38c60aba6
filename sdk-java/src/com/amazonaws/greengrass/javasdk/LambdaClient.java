package com.amazonaws.greengrass.javasdk;

import com.amazonaws.greengrass.javasdk.model.GGLambdaException;
import com.amazonaws.greengrass.javasdk.model.InvalidLambdaRequestException;
import com.amazonaws.greengrass.javasdk.model.InvocationType;
import com.amazonaws.greengrass.javasdk.model.InvokeRequest;
import com.amazonaws.greengrass.javasdk.model.InvokeResponse;
import com.ggcore.runtime.Bytes;
import com.ggcore.runtime.Host;
import com.ggcore.runtime.HostException;

import java.nio.ByteBuffer;
import java.util.Base64;

/**
 * Invokes other functions of the group. A function that fails still gives a response: the error document is
 * its payload and {@link InvokeResponse#getFunctionError()} is "Handled" or "Unhandled". An exception means
 * the core refused the request (no such function, no subscription, queue full...).
 */
public class LambdaClient extends GGClient {
    public LambdaClient() {
    }

    public InvokeResponse invoke(InvokeRequest request) throws GGLambdaException {
        if (request == null) {
            throw new InvalidLambdaRequestException("Request is a required parameter");
        }
        String arn = request.getFunctionArn();
        if (arn == null || arn.isEmpty()) {
            throw new InvalidLambdaRequestException("Function ARN is a required parameter");
        }
        String clientContext = request.getClientContext();
        if (clientContext == null) {
            clientContext = "";
        }
        if (!clientContext.isEmpty()) {
            try {
                Base64.getDecoder().decode(clientContext);
            } catch (IllegalArgumentException e) {
                throw new InvalidLambdaRequestException("Client Context is not valid base64: " + e.getMessage());
            }
        }
        boolean event = request.getInvocationType() == InvocationType.Event;
        String qualifier = request.getQualifier() == null ? "" : request.getQualifier();
        Object[] answer;
        try {
            answer = Host.api.invoke(arn, qualifier, event, clientContext, Bytes.of(request.getPayload()));
        } catch (HostException e) {
            throw e.isInvalidRequest() ? new InvalidLambdaRequestException(e.describe(), e)
                    : new GGLambdaException(e.describe(), e);
        }
        InvokeResponse response = new InvokeResponse();
        response.setStatusCode(event ? 202 : 200);
        response.setInvocationId(answer != null && answer.length > 0 && answer[0] != null ? answer[0].toString() : "");
        response.setFunctionError(answer != null && answer.length > 1 && answer[1] != null ? answer[1].toString() : "");
        byte[] payload = answer != null && answer.length > 2 && answer[2] instanceof byte[] ? (byte[]) answer[2]
                : new byte[0];
        response.setPayload(ByteBuffer.wrap(payload));
        return response;
    }
}
