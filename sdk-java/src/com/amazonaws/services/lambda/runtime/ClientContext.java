package com.amazonaws.services.lambda.runtime;

import java.util.Map;

/** The client context a caller sent with the invocation ({@code {"client":..,"custom":..,"env":..}}). */
public interface ClientContext {
    Client getClient();

    Map<String, String> getCustom();

    Map<String, String> getEnvironment();
}
