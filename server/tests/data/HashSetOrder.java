import java.util.*;
// Prints the iteration order of the clone of a java.util.HashSet<String> (what
// ZooKeeper's DataTree.getEphemerals returns for a closing session) after seeded
// sequences of adds and removes, one line per case: the operations ("+path" adds,
// "-path" removes), "|", the clone's order. java_ephemeral_order.txt is the output of
// `java HashSetOrder 200` (Java 17):
//   javac HashSetOrder.java && java HashSetOrder 200
public class HashSetOrder {
  static String path(Random r, int mask, int want) {
    while (true) {
      StringBuilder sb = new StringBuilder("/");
      int len = 1 + r.nextInt(5);
      for (int k = 0; k < len; k++) sb.append((char) ('a' + r.nextInt(4)));
      if (r.nextInt(3) == 0) sb.append("/s").append(String.format("%010d", r.nextInt(200)));
      String p = sb.toString();
      int h = p.hashCode(); h ^= h >>> 16;
      if (mask == 0 || (h & mask) == want) return p;
    }
  }
  public static void main(String[] a) {
    int cases = Integer.parseInt(a[0]);
    for (int s = 0; s < cases; s++) {
      Random r = new Random(s);
      int mode = s % 4;
      // mode 0: few paths; 1: many (tables grow); 2: many removes; 3: paths colliding in a
      // 32-bucket table (bins of 9+ grow a small table, treeifyBin's resize)
      int n = mode == 0 ? 1 + r.nextInt(12) : mode == 3 ? 1 + r.nextInt(16) : 1 + r.nextInt(100);
      HashSet<String> set = new HashSet<>();
      List<String> live = new ArrayList<>();
      StringBuilder out = new StringBuilder();
      for (int i = 0; i < n; i++) {
        boolean remove = !live.isEmpty() && r.nextInt(mode == 2 ? 2 : 6) == 0;
        if (remove) {
          String p = live.remove(r.nextInt(live.size()));
          set.remove(p);
          out.append('-').append(p).append(' ');
        } else {
          String p = path(r, mode == 3 ? 31 : 0, 7);
          if (set.add(p)) live.add(p);
          out.append('+').append(p).append(' ');
        }
      }
      @SuppressWarnings("unchecked")
      HashSet<String> clone = (HashSet<String>) set.clone();
      out.append('|');
      for (String p : clone) out.append(' ').append(p);
      System.out.println(out);
    }
  }
}
