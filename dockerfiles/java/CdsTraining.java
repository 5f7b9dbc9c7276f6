// Compiled once at image build time by java.Dockerfile, with -XX:ArchiveClassesAtExit, so
// that the javac classes a typical small program needs are in /opt/coderunner/javac.jsa
// (an AppCDS archive: javac then starts about twice as fast). Not part of the image.
import java.io.*;
import java.util.*;
import java.util.function.*;
import java.util.stream.*;

public class CdsTraining {
    record Point(int x, int y) {}

    sealed interface Shape permits Circle, Square {}
    record Circle(double r) implements Shape {}
    record Square(double side) implements Shape {}

    enum Color { RED, GREEN, BLUE }

    static abstract class Animal implements Comparable<Animal> {
        protected final String name;
        Animal(String name) { this.name = name; }
        abstract String sound();
        @Override public int compareTo(Animal o) { return name.compareTo(o.name); }
    }

    static final class Dog extends Animal {
        Dog(String name) { super(name); }
        @Override String sound() { return "woof"; }
    }

    static <T extends Comparable<T>> T max(List<T> xs) {
        T best = xs.get(0);
        for (T x : xs) if (x.compareTo(best) > 0) best = x;
        return best;
    }

    static double area(Shape s) {
        if (s instanceof Circle c) return Math.PI * c.r() * c.r();
        if (s instanceof Square q) return q.side() * q.side();
        throw new IllegalArgumentException("unknown shape");
    }

    public static void main(String[] args) throws IOException {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        Scanner sc = new Scanner(System.in);
        List<Integer> xs = new ArrayList<>(List.of(3, 1, 2));
        Map<String, List<Integer>> groups = new HashMap<>();
        groups.computeIfAbsent("odd", k -> new ArrayList<>()).add(1);
        Deque<int[]> queue = new ArrayDeque<>();
        queue.add(new int[] {0, 0});
        PriorityQueue<Long> heap = new PriorityQueue<>(Comparator.reverseOrder());
        heap.add(5L);
        TreeMap<String, Integer> tree = new TreeMap<>();
        Set<Point> seen = new HashSet<>();
        seen.add(new Point(1, 2));
        Collections.sort(xs);
        int[] arr = {5, 4, 3};
        Arrays.sort(arr);
        long[][] grid = new long[3][3];
        String joined = xs.stream().map(String::valueOf).collect(Collectors.joining(","));
        int sum = IntStream.rangeClosed(1, 10).filter(i -> i % 2 == 0).sum();
        Function<Integer, Integer> twice = v -> v * 2;
        BiFunction<Integer, Integer, Integer> add = Integer::sum;
        Supplier<List<String>> fresh = ArrayList::new;
        Optional<String> first = Stream.of("a", "b").filter(s -> !s.isEmpty()).findFirst();
        var sb = new StringBuilder();
        for (Color c : Color.values()) {
            switch (c) {
                case RED -> sb.append('r');
                case GREEN -> sb.append('g');
                default -> sb.append('b');
            }
        }
        String kind = switch (arr.length) { case 0 -> "empty"; case 1 -> "one"; default -> { yield "many"; } };
        String text = """
            text block
            """;
        try {
            Integer.parseInt("x");
        } catch (NumberFormatException e) {
            sb.append(e.getMessage());
        } finally {
            sb.append(';');
        }
        List<Animal> zoo = List.of(new Dog("rex"), new Dog("ace"));
        System.out.printf("%s %d %d %d %s %s %s %s %.2f%n", joined, sum, twice.apply(2), add.apply(1, 2),
                first.orElse("-"), kind, max(zoo).sound(), text.strip(), area(new Circle(1)));
        System.out.println(sb + " " + tree + queue.size() + heap.peek() + grid[0][0] + fresh.get() + groups);
        if (in.ready() && sc.hasNextInt()) System.out.println(Math.max(sc.nextInt(), 0));
    }
}
