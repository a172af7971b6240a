import java.util.*;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.zookeeper.data.Id;
// Prints the iteration order of ZooKeeper's auth id set (a ConcurrentHashMap key set
// of org.apache.zookeeper.data.Id) for seeded sequences of added ids, one line per case:
// the ids added, "|", the set's order. java_auth_order.txt holds lines 1-40 and
// 1240-1250 of `java ChmOrder 20000` (Java 17, ZooKeeper 3.8.0's jute jar):
//   javac -cp /usr/share/java/zookeeper-jute.jar ChmOrder.java
//   java -cp /usr/share/java/zookeeper-jute.jar:. ChmOrder 20000
public class ChmOrder {
  public static void main(String[] a) {
    int cases = Integer.parseInt(a[0]);
    for (int s = 0; s < cases; s++) {
      Random r = new Random(s);
      int n = 1 + r.nextInt(s % 5 == 0 ? 120 : 20);
      Set<Id> set = Collections.newSetFromMap(new ConcurrentHashMap<>());
      List<Id> ins = new ArrayList<>();
      int mode = s % 3; int mask = mode == 1 ? 255 : 1023;
      if (mode != 0) n = mode == 1 ? 1 + r.nextInt(40) : 1 + r.nextInt(130);
      for (int i = 0; i < n; i++) {
        if (mode != 0) {
          if (!ins.isEmpty() && r.nextInt(5) == 0) { Id d = ins.get(r.nextInt(ins.size())); ins.add(d); set.add(d); continue; }
          while (true) {
            String sc = r.nextInt(4) == 0 ? "ip" : "digest";
            String v = Long.toString(r.nextLong() & 0xffffffL, 36);
            Id c = new Id(sc, v);
            int h = c.hashCode(); h = (h ^ (h >>> 16)) & 0x7fffffff;
            if ((h & mask) == 7) { ins.add(c); set.add(c); break; }
          }
          continue;
        }
        String scheme = r.nextInt(4) == 0 ? "ip" : "digest";
        // small alphabet so buckets collide often
        StringBuilder sb = new StringBuilder();
        int len = 1 + r.nextInt(6);
        for (int k = 0; k < len; k++) sb.append((char)('a' + r.nextInt(3)));
        Id id = new Id(scheme, sb.toString());
        ins.add(id);
        set.add(id);
      }
      StringBuilder out = new StringBuilder();
      for (Id id : ins) out.append(id.getScheme()).append(':').append(id.getId()).append(' ');
      out.append("|");
      for (Id id : set) out.append(' ').append(id.getScheme()).append(':').append(id.getId());
      System.out.println(out);
    }
  }
}
