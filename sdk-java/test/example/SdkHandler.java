package example;

import com.amazonaws.greengrass.javasdk.IotDataClient;
import com.amazonaws.greengrass.javasdk.model.GGIotDataException;
import com.amazonaws.greengrass.javasdk.model.GGLambdaException;
import com.amazonaws.greengrass.javasdk.model.PublishRequest;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;

/** Uses the SDK the way published samples do (a client built once, checked exceptions caught). */
public class SdkHandler {
    private static final IotDataClient IOT = new IotDataClient();

    public String handle(String input) {
        try {
            IOT.publish(new PublishRequest().withTopic("out").withPayload(
                    ByteBuffer.wrap(input.getBytes(StandardCharsets.UTF_8))));
            return "published";
        } catch (GGIotDataException e) {
            return "caught " + e.getClass().getSimpleName() + ": " + e.getMessage();
        } catch (GGLambdaException e) {
            return "caught lambda " + e.getMessage();
        }
    }
}
