package com.amazonaws.services.lambda.runtime;

/** The calling application, as described in a client context's {@code client} object. */
public interface Client {
    String getInstallationId();

    String getAppTitle();

    String getAppVersionName();

    String getAppVersionCode();

    String getAppPackageName();
}
