import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.SettingValueParsers;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.connectors.BoltConnectorInternalSettings;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;
import org.neo4j.graphdb.GraphDatabaseService;
import org.neo4j.kernel.internal.Version;
import org.neo4j.logging.log4j.Log4jLogProvider;

/**
 * A Neo4j Community server reduced to what the tests need: the Bolt connector on loopback,
 * no auth, no TLS, no HTTP, no routing connector. Started and stopped by scripts/servers/neo4j.sh.
 *
 * <p>Usage: {@code java ... EmbeddedNeo4j <bolt-port> <home-dir> [page-cache-size, e.g. 128m]}.
 * Prints {@code NEO4J_READY bolt://127.0.0.1:<port> ...} once the default database is
 * available, then runs until SIGTERM/SIGINT, when it shuts the databases down cleanly.
 */
public final class EmbeddedNeo4j {
  public static void main(String[] args) throws Exception {
    if (args.length < 2 || args.length > 3) {
      System.err.println("usage: EmbeddedNeo4j <bolt-port> <home-dir> [page-cache-size]");
      System.exit(2);
    }
    int port = Integer.parseInt(args[0]);
    Path home = Path.of(args[1]).toAbsolutePath();
    long pageCache = SettingValueParsers.BYTES.parse(args.length > 2 ? args[2] : "128m");
    Files.createDirectories(home);
    long t0 = System.nanoTime();

    DatabaseManagementService dbms =
        new DatabaseManagementServiceBuilder(home)
            .setUserLogProvider(new Log4jLogProvider(System.out))
            .setConfig(GraphDatabaseSettings.default_listen_address, new SocketAddress("127.0.0.1"))
            .setConfig(BoltConnector.enabled, true)
            .setConfig(BoltConnector.listen_address, new SocketAddress("127.0.0.1", port))
            .setConfig(BoltConnector.advertised_address, new SocketAddress("127.0.0.1", port))
            .setConfig(BoltConnector.encryption_level, BoltConnector.EncryptionLevel.DISABLED)
            // Bolt waits 5 s per connector for idle threads/connections at shutdown: 1 s is plenty.
            .setConfig(BoltConnectorInternalSettings.thread_pool_shutdown_wait_time, Duration.ofSeconds(1))
            .setConfig(BoltConnectorInternalSettings.connection_shutdown_wait_time, Duration.ofSeconds(1))
            .setConfig(GraphDatabaseSettings.routing_enabled, false)
            .setConfig(GraphDatabaseSettings.auth_enabled, false)
            .setConfig(GraphDatabaseSettings.udc_enabled, false)
            .setConfig(GraphDatabaseSettings.pagecache_memory, pageCache)
            .build();

    CountDownLatch stopped = new CountDownLatch(1);
    Runtime.getRuntime()
        .addShutdownHook(
            new Thread(
                () -> {
                  System.out.println("NEO4J_STOPPING");
                  System.out.flush();
                  try {
                    dbms.shutdown();
                  } catch (Throwable t) {
                    t.printStackTrace();
                  }
                  System.out.println("NEO4J_STOPPED");
                  System.out.flush();
                  stopped.countDown();
                },
                "neo4j-shutdown"));

    GraphDatabaseService db = dbms.database(GraphDatabaseSettings.DEFAULT_DATABASE_NAME);
    while (!db.isAvailable(TimeUnit.SECONDS.toMillis(1))) {
      System.out.println("waiting for database " + db.databaseName());
      System.out.flush();
    }
    System.out.printf(
        "NEO4J_READY bolt://127.0.0.1:%d version=%s home=%s startup_ms=%d%n",
        port, Version.getNeo4jVersion(), home, TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0));
    System.out.flush();
    stopped.await(); // until the shutdown hook has run
  }
}
