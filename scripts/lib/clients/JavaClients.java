// The Java ZooKeeper client (3.8) and Curator recipes against a ZooKeeper-protocol
// server or cluster: java JavaClients HOST:PORT[,HOST:PORT...]
// With several hosts each client picks one: a client that reads another client's write
// syncs first (ZooKeeper's guarantee across clients; costs a single server nothing).
// Prints one line per section; exit 0 when every check passed, 1 at the first failure.
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.atomic.DistributedAtomicLong;
import org.apache.curator.framework.recipes.cache.CuratorCache;
import org.apache.curator.framework.recipes.cache.CuratorCacheListener;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.retry.ExponentialBackoffRetry;
import org.apache.curator.retry.RetryOneTime;
import org.apache.zookeeper.AddWatchMode;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.Op;
import org.apache.zookeeper.OpResult;
import org.apache.zookeeper.WatchedEvent;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.ZooDefs;
import org.apache.zookeeper.ZooKeeper;
import org.apache.zookeeper.data.Stat;

public class JavaClients {
    static void check(boolean c, String what) {
        if (!c) throw new AssertionError(what);
    }

    static void eq(Object got, Object want, String what) {
        if (!got.equals(want)) throw new AssertionError(what + ": got " + got + ", want " + want);
    }

    static byte[] b(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    static ZooKeeper connect(String hosts, Watcher w) throws Exception {
        CountDownLatch up = new CountDownLatch(1);
        ZooKeeper zk = new ZooKeeper(hosts, 10000, ev -> {
            if (ev.getState() == Watcher.Event.KeeperState.SyncConnected && ev.getType() == Watcher.Event.EventType.None) up.countDown();
            if (w != null) w.process(ev);
        });
        check(up.await(15, TimeUnit.SECONDS), "connected");
        return zk;
    }

    static void waitFor(java.util.function.BooleanSupplier p, String what) throws Exception {
        long end = System.currentTimeMillis() + 20000;
        while (System.currentTimeMillis() < end) {
            if (p.getAsBoolean()) return;
            Thread.sleep(20);
        }
        throw new AssertionError("timed out waiting for " + what);
    }

    static void waitFor(java.util.function.BooleanSupplier p, String what, List<String> seen) throws Exception {
        try {
            waitFor(p, what);
        } catch (AssertionError e) {
            throw new AssertionError(e.getMessage() + "; seen: " + seen);
        }
    }

    // sync(path) and wait for its answer: the member this client is on has applied
    // every write committed before it.
    static void sync(ZooKeeper zk, String path) throws Exception {
        CountDownLatch done = new CountDownLatch(1);
        AtomicInteger rc = new AtomicInteger(-1);
        zk.sync(path, (r, p, ctx) -> { rc.set(r); done.countDown(); }, null);
        check(done.await(15, TimeUnit.SECONDS), "sync answered");
        eq(rc.get(), 0, "sync result");
    }

    static String zookeeperClient(String hosts) throws Exception {
        List<String> events = new CopyOnWriteArrayList<>();
        ZooKeeper zk = connect(hosts, null);
        ZooKeeper other = connect(hosts, null);
        try {
            String P = "/java";
            zk.create(P, b("root"), ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            Stat st = new Stat();
            zk.create(P + "/p", b("p"), ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT, st);
            eq(st.getVersion(), 0, "create2 stat");
            String s = zk.create(P + "/s-", b(""), ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT_SEQUENTIAL);
            eq(s, P + "/s-0000000001", "sequential name");
            zk.create(P + "/e", b(""), ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL);
            zk.create(P + "/es-", b(""), ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL_SEQUENTIAL);
            zk.create(P + "/c", b(""), ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.CONTAINER);
            zk.create(P + "/c/child", b(""), ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            zk.create(P + "/ttl", b(""), ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT_WITH_TTL, st, 3600000);
            eq(st.getEphemeralOwner(), 0L, "a TTL node shows no owner");
            eq(zk.getAllChildrenNumber(P), 7, "getAllChildrenNumber");
            List<String> eph = zk.getEphemerals(P);
            Collections.sort(eph);
            eq(eph.size(), 2, "getEphemerals: " + eph);
            check(eph.get(0).equals(P + "/e") && eph.get(1).startsWith(P + "/es-"), "getEphemerals: " + eph);
            // persistent and recursive watches
            zk.addWatch(P + "/p", ev -> events.add("P " + ev.getType() + " " + ev.getPath()), AddWatchMode.PERSISTENT);
            zk.addWatch(P, ev -> events.add("R " + ev.getType() + " " + ev.getPath()), AddWatchMode.PERSISTENT_RECURSIVE);
            other.setData(P + "/p", b("1"), -1);
            other.setData(P + "/p", b("2"), -1);
            other.create(P + "/p/k", b(""), ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            other.delete(P + "/p/k", -1);
            waitFor(() -> events.size() >= 10, "10 persistent events, got " + events);
            Thread.sleep(200);
            List<String> want = Arrays.asList(
                "P NodeDataChanged /java/p", "R NodeDataChanged /java/p",
                "P NodeDataChanged /java/p", "R NodeDataChanged /java/p",
                "P NodeChildrenChanged /java/p", "R NodeChildrenChanged /java/p", "R NodeCreated /java/p/k",
                "P NodeChildrenChanged /java/p", "R NodeChildrenChanged /java/p", "R NodeDeleted /java/p/k");
            // (the client hands the server's NodeChildrenChanged of /java/p, sent for the
            // persistent watch, to the recursive watcher of /java too)
            // the order between the two watchers of one event is the client's, not the server's
            List<String> got = new ArrayList<>(events);
            List<String> wantSorted = new ArrayList<>(want);
            Collections.sort(got);
            Collections.sort(wantSorted);
            eq(got, wantSorted, "persistent + recursive events");
            events.clear();
            zk.removeAllWatches(P + "/p", Watcher.WatcherType.Any, false);
            // the client tells the removed watcher so itself (a local event)
            waitFor(() -> events.contains("P PersistentWatchRemoved /java/p"), "PersistentWatchRemoved, got " + events);
            events.remove("P PersistentWatchRemoved /java/p");
            eq(events, want.subList(0, 0), "no event besides PersistentWatchRemoved: " + events);
            other.setData(P + "/p", b("3"), -1);
            waitFor(() -> events.size() >= 1, "recursive watch still there");
            Thread.sleep(200);
            eq(events, Arrays.asList("R NodeDataChanged /java/p"), "after removing the watches of /java/p");
            try {
                zk.removeAllWatches(P + "/p", Watcher.WatcherType.Data, false);
                throw new AssertionError("removeWatches of nothing succeeded");
            } catch (KeeperException.NoWatcherException expected) {
                // ok
            }
            // multi and its results
            List<OpResult> res = zk.multi(Arrays.asList(
                Op.create(P + "/m", b("m"), ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT),
                Op.setData(P + "/p", b("4"), 3), Op.check(P + "/p", 4), Op.delete(P + "/m", 0)));
            eq(res.size(), 4, "multi results");
            eq(((OpResult.SetDataResult) res.get(1)).getStat().getVersion(), 4, "multi setData stat");
            try {
                zk.multi(Arrays.asList(Op.create(P + "/m2", b(""), ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT),
                    Op.check(P + "/p", 99)));
                throw new AssertionError("failing multi succeeded");
            } catch (KeeperException.BadVersionException e) {
                List<OpResult> r = e.getResults();
                eq(((OpResult.ErrorResult) r.get(0)).getErr(), 0, "first op of a failed multi");
                eq(((OpResult.ErrorResult) r.get(1)).getErr(), KeeperException.Code.BADVERSION.intValue(), "failed op");
            }
            check(zk.exists(P + "/m2", false) == null, "failed multi left nothing");
            // multiRead (getData + getChildren)
            List<OpResult> rd = zk.multi(Arrays.asList(Op.getData(P + "/p"), Op.getChildren(P + "/c")));
            eq(new String(((OpResult.GetDataResult) rd.get(0)).getData(), StandardCharsets.UTF_8), "4", "multiRead data");
            eq(((OpResult.GetChildrenResult) rd.get(1)).getChildren(), Arrays.asList("child"), "multiRead children");
            // digest auth and whoAmI
            zk.addAuthInfo("digest", b("alice:alice-pw"));
            boolean alice = false;
            for (org.apache.zookeeper.data.ClientInfo ci : zk.whoAmI()) {
                if (ci.getAuthScheme().equals("digest") && ci.getUser().equals("alice")) alice = true;
            }
            check(alice, "whoAmI lists alice");
            zk.create(P + "/auth", b("x"), ZooDefs.Ids.CREATOR_ALL_ACL, CreateMode.PERSISTENT);
            sync(other, P + "/auth");
            try {
                other.getData(P + "/auth", false, null);
                throw new AssertionError("read without auth");
            } catch (KeeperException.NoAuthException expected) {
                // ok
            }
            // ephemerals go with the session
            CountDownLatch gone = new CountDownLatch(1);
            other.exists(P + "/e", ev -> { if (ev.getType() == Watcher.Event.EventType.NodeDeleted) gone.countDown(); });
            zk.close();
            check(gone.await(10, TimeUnit.SECONDS), "ephemeral deleted on close");
            check(other.exists(P + "/e", false) == null, "ephemeral gone");
        } finally {
            zk.close();
            other.close();
        }
        return "create modes (container, TTL, sequential, ephemeral), create2 stat, getAllChildrenNumber, "
            + "getEphemerals, persistent + recursive watches, removeWatches, multi + multiRead, digest auth, whoAmI";
    }

    static String curator(String hosts) throws Exception {
        List<CuratorFramework> cs = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            CuratorFramework c = CuratorFrameworkFactory.newClient(hosts, 10000, 10000, new ExponentialBackoffRetry(100, 3));
            c.start();
            check(c.blockUntilConnected(15, TimeUnit.SECONDS), "curator connected");
            cs.add(c);
        }
        try {
            // LeaderLatch: exactly one leader; when it leaves, another one
            List<LeaderLatch> latches = new ArrayList<>();
            for (int i = 0; i < 3; i++) {
                LeaderLatch l = new LeaderLatch(cs.get(i), "/curator/latch", "id" + i);
                l.start();
                latches.add(l);
            }
            waitFor(() -> latches.stream().filter(LeaderLatch::hasLeadership).count() == 1, "one leader");
            LeaderLatch first = latches.stream().filter(LeaderLatch::hasLeadership).findFirst().get();
            first.close();
            latches.remove(first);
            waitFor(() -> latches.stream().filter(LeaderLatch::hasLeadership).count() == 1, "a new leader");
            for (LeaderLatch l : latches) l.close();
            // InterProcessMutex: mutual exclusion across three clients
            AtomicInteger inside = new AtomicInteger(), max = new AtomicInteger(), total = new AtomicInteger();
            List<Thread> ts = new ArrayList<>();
            for (CuratorFramework c : cs) {
                Thread t = new Thread(() -> {
                    InterProcessMutex m = new InterProcessMutex(c, "/curator/mutex");
                    try {
                        for (int k = 0; k < 5; k++) {
                            check(m.acquire(20, TimeUnit.SECONDS), "mutex acquired");
                            max.accumulateAndGet(inside.incrementAndGet(), Math::max);
                            Thread.sleep(5);
                            inside.decrementAndGet();
                            total.incrementAndGet();
                            m.release();
                        }
                    } catch (Exception e) {
                        throw new RuntimeException(e);
                    }
                });
                t.start();
                ts.add(t);
            }
            for (Thread t : ts) t.join(60000);
            eq(max.get(), 1, "one holder at a time");
            eq(total.get(), 15, "all acquisitions");
            // CuratorCache follows creates, changes and deletes
            List<String> seen = new CopyOnWriteArrayList<>();
            CuratorCache cache = CuratorCache.build(cs.get(0), "/curator/cache");
            cache.listenable().addListener(CuratorCacheListener.builder()
                .forCreates(n -> seen.add("create " + n.getPath()))
                .forChanges((o, n) -> seen.add("change " + n.getPath() + " " + new String(n.getData(), StandardCharsets.UTF_8)))
                .forDeletes(n -> seen.add("delete " + n.getPath()))
                .build());
            cache.start();
            // each step waits for the cache to see the previous one: a node created and
            // deleted before the cache fetched it is never reported (by any server)
            cs.get(1).create().creatingParentsIfNeeded().forPath("/curator/cache/a", b("1"));
            waitFor(() -> seen.contains("create /curator/cache/a"), "CuratorCache create", seen);
            cs.get(1).setData().forPath("/curator/cache/a", b("2"));
            waitFor(() -> seen.contains("change /curator/cache/a 2"), "CuratorCache change", seen);
            cs.get(2).create().forPath("/curator/cache/a/b", b("x"));
            waitFor(() -> seen.contains("create /curator/cache/a/b"), "CuratorCache create of a child", seen);
            cs.get(2).delete().forPath("/curator/cache/a/b");
            waitFor(() -> seen.contains("delete /curator/cache/a/b"), "CuratorCache delete", seen);
            eq(new String(cache.get("/curator/cache/a").get().getData(), StandardCharsets.UTF_8), "2", "cache data");
            cache.close();
            // DistributedAtomicLong
            DistributedAtomicLong counter = new DistributedAtomicLong(cs.get(0), "/curator/counter", new RetryOneTime(10));
            for (int i = 0; i < 10; i++) check(counter.increment().succeeded(), "increment");
            sync(cs.get(1).getZookeeperClient().getZooKeeper(), "/curator/counter");
            eq(new DistributedAtomicLong(cs.get(1), "/curator/counter", new RetryOneTime(10)).get().postValue(), 10L, "counter");
        } finally {
            for (CuratorFramework c : cs) c.close();
        }
        return "LeaderLatch (one leader, hand-over), InterProcessMutex (3 clients x 5), CuratorCache, DistributedAtomicLong";
    }

    public static void main(String[] args) throws Exception {
        String hosts = args[0];
        try {
            long t = System.currentTimeMillis();
            System.out.println("java: zookeeper client ok: " + zookeeperClient(hosts) + " [" + (System.currentTimeMillis() - t) + " ms]");
            t = System.currentTimeMillis();
            System.out.println("java: curator ok: " + curator(hosts) + " [" + (System.currentTimeMillis() - t) + " ms]");
        } catch (Throwable e) {
            System.out.println("java: FAILED: " + e);
            e.printStackTrace(System.out);
            System.exit(1);
        }
        System.exit(0);
    }
}
