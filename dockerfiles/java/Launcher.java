// code-runner's Java launcher: started warm by the agent, compiles and runs one program in this JVM.
// Protocol: write "ready\n" on fd 4 (AF_UNIX control socket), then read one JSON line from it:
//   {"entry": "/workspace/Main.java", "args": [...], "tty": false}; compile every .java file under the
//   entry's directory in memory, write "compiled 1|0 <ms>\n" on fd 4, run the entry file's main class.
// Unless tty, System.out/err go to fd 3 as frames: kind '1'|'2' (1 byte), payload length (u32 BE),
//   payload (<= 4091 bytes: one atomic write each). Run with --add-opens java.base/java.io=ALL-UNNAMED.
import java.io.*;
import java.lang.reflect.*;
import java.net.*;
import java.nio.ByteBuffer;
import java.nio.file.*;
import java.util.*;
import java.util.stream.*;
import javax.tools.*;
import static java.nio.charset.StandardCharsets.UTF_8;

public final class Launcher {
    static final JavaCompiler JAVAC = ToolProvider.getSystemJavaCompiler();
    static final StandardJavaFileManager FILES = JAVAC.getStandardFileManager(null, Locale.ROOT, UTF_8);
    static final int WARM_COMPILES = 6; // fewer leave javac slower for the job; more only lengthen warming
    static OutputStream channel; // fd 3

    public static void main(String[] launcherArgs) throws Throwable {
        FileDescriptor control = descriptor(4);
        channel = new FileOutputStream("/proc/self/fd/3");
        FILES.setLocation(StandardLocation.CLASS_PATH, List.of()); // programs see the JDK, not the launcher
        warmUp();
        new FileOutputStream(control).write("ready\n".getBytes(UTF_8));

        Map<?, ?> job = (Map<?, ?>) new Json(readLine(new FileInputStream(control))).value();
        boolean tty = Boolean.TRUE.equals(job.get("tty"));
        System.setOut(new PrintStream(tty ? new FileOutputStream(FileDescriptor.out) : new Framed('1'), true, UTF_8));
        System.setErr(new PrintStream(tty ? new FileOutputStream(FileDescriptor.err) : new Framed('2'), true, UTF_8));
        Path entry = Path.of((String) job.get("entry")).toAbsolutePath().normalize();
        long start = System.nanoTime();
        Compilation compiled = compile(sources(entry.getParent()), entry.toUri(), System.err);
        String ms = String.format(Locale.ROOT, "%.1f", (System.nanoTime() - start) / 1e6);
        try (FileOutputStream report = new FileOutputStream(control)) { // closed: the program must not speak for the launcher
            report.write(("compiled " + (compiled == null ? 0 : 1) + " " + ms + "\n").getBytes(UTF_8));
        }
        if (compiled == null) System.exit(1);
        List<?> args = job.get("args") == null ? List.of() : (List<?>) job.get("args");
        run(compiled, args.toArray(new String[0]));
    } // returning lets the JVM end as `java` does: with 0, once the program's other threads have ended

    /** Before "ready": load and JIT-warm javac (a few compiles), the frame writer, reflection, the job path. */
    static void warmUp() throws Throwable {
        new Json("{\"entry\": \"/workspace/Main.java\", \"args\": [\"\\u00e9\\n\", 1, null], \"tty\": false}").value();
        sources(Path.of(System.getProperty("java.home"), "conf")); // a few small files, no .java
        URI uri = URI.create("mem:///Warm.java");
        Compilation warm = null;
        for (int i = 0; i < WARM_COMPILES; i++) {
            warm = compile(List.of(new Source(uri, "Warm.java", WARM_PROGRAM)), uri, new PrintStream(OutputStream.nullOutputStream()));
        }
        OutputStream fd3 = channel;
        PrintStream out = System.out, err = System.err;
        try (OutputStream devNull = new FileOutputStream("/dev/null")) {
            channel = devNull;
            System.setOut(new PrintStream(new Framed('1'), true, UTF_8));
            System.setErr(new PrintStream(new Framed('2'), true, UTF_8));
            run(warm, new String[] {"1 2\nthree"});
        } finally {
            channel = fd3;
            System.setOut(out);
            System.setErr(err);
        }
    }

    static final String WARM_PROGRAM = """
            import java.util.*;
            import java.util.stream.*;
            public class Warm {
                record Circle(double r) { double area() { return Math.PI * r * r; } }
                enum Color { RED, GREEN }
                static <T extends Comparable<T>> T max(List<T> xs) { return xs.stream().max(Comparator.naturalOrder()).get(); }
                public static void main(String[] args) throws Exception {
                    Scanner in = new Scanner(args[0]);
                    int a = in.nextInt(), b = in.nextInt();
                    List<Integer> xs = new ArrayList<>(List.of(a, b, 3));
                    Map<String, Integer> counts = new HashMap<>();
                    for (String w : "a b a".split(" ")) counts.merge(w, 1, Integer::sum);
                    String s = xs.stream().map(x -> x * 2).filter(x -> x > 2).map(String::valueOf).collect(Collectors.joining(","));
                    StringBuilder sb = new StringBuilder(switch (Color.values()[a - 1]) { case RED -> "r"; default -> "?"; });
                    try { ((int[]) (Object) new int[0])[1] = 2; } catch (ArrayIndexOutOfBoundsException e) { sb.append(e.getMessage()); }
                    Runnable r = new Runnable() { public void run() { sb.append(new Circle(2).area()); } };
                    r.run();
                    List raw = new ArrayList(); // unchecked: javac's notes
                    raw.add(sb);
                    System.out.println(a + b + " " + s + counts + max(xs) + raw + String.format("%.2f %5d", 1.5, 7));
                    System.err.println("line " + in.nextLine());
                }
            }
            """;

    /** Every .java file under the workspace, read into memory. */
    static List<Source> sources(Path workspace) throws IOException {
        try (Stream<Path> walk = Files.walk(workspace)) {
            return walk.filter(p -> p.toString().endsWith(".java") && Files.isRegularFile(p)).sorted()
                    .map(p -> Source.read(p, workspace)).collect(Collectors.toList());
        }
    }

    static final class Compilation {
        final List<String> entryClasses = new ArrayList<>(); // binary names, from the entry file
        final Map<String, byte[]> classes = new HashMap<>();
        final ClassLoader loader = new MemoryLoader(classes);
    }

    /** Compile in memory, printing diagnostics as javac does; null if there were errors. */
    static Compilation compile(List<Source> sources, URI entry, PrintStream err) {
        Compilation out = new Compilation();
        JavaFileManager memory = new ForwardingJavaFileManager<>(FILES) {
            @Override
            public JavaFileObject getJavaFileForOutput(Location at, String name, JavaFileObject.Kind kind, FileObject from) {
                if (from != null && from.toUri().equals(entry)) out.entryClasses.add(name);
                return new SimpleJavaFileObject(URI.create("mem:///" + name.replace('.', '/') + ".class"), kind) {
                    @Override
                    public OutputStream openOutputStream() {
                        return new ByteArrayOutputStream() {
                            @Override
                            public void close() { out.classes.put(name, toByteArray()); }
                        };
                    }
                };
            }
        };
        PrintWriter log = new PrintWriter(err, true, UTF_8); // javac's own format: `Main.java:3: error: ...`
        boolean ok = JAVAC.getTask(log, memory, null, List.of("-proc:none"), null, sources).call();
        log.flush();
        return ok ? out : null;
    }

    /** A source file in memory. Any file may declare any public class (Main.java may hold `public class
     *  Anything`); only package-info and module-info keep their special names. */
    static final class Source extends SimpleJavaFileObject {
        final String name, text; // name: relative to the workspace, as javac prints it

        Source(URI uri, String name, String text) {
            super(uri, Kind.SOURCE);
            this.name = name;
            this.text = text;
        }

        static Source read(Path path, Path workspace) { // undecodable bytes become U+FFFD, as in javac
            try {
                return new Source(path.toUri(), workspace.relativize(path).toString(), new String(Files.readAllBytes(path), UTF_8));
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }

        @Override
        public String getName() { return name; }

        @Override
        public CharSequence getCharContent(boolean ignoreEncodingErrors) { return text; }

        @Override
        public boolean isNameCompatible(String simpleName, Kind kind) {
            return kind == Kind.SOURCE && (!simpleName.endsWith("-info") || Path.of(name).endsWith(simpleName + ".java"));
        }
    }

    /** The program's classes from memory first, then the JDK's; resources from the working directory. */
    static final class MemoryLoader extends ClassLoader {
        final Map<String, byte[]> classes;

        MemoryLoader(Map<String, byte[]> classes) {
            super(ClassLoader.getPlatformClassLoader());
            this.classes = classes;
        }

        @Override
        protected Class<?> findClass(String name) throws ClassNotFoundException {
            byte[] bytes = classes.get(name);
            return bytes != null ? defineClass(name, bytes, 0, bytes.length) : getSystemClassLoader().loadClass(name);
        }

        @Override
        protected URL findResource(String name) {
            try {
                Path path = Path.of(name).toAbsolutePath();
                return Files.isRegularFile(path) ? path.toUri().toURL() : null;
            } catch (InvalidPathException | MalformedURLException e) {
                return null;
            }
        }
    }

    /** Run the entry file's main class (its public top-level class first) as `java` would. */
    static void run(Compilation compiled, String[] args) throws Throwable {
        Method main = null;
        String first = null;
        for (String name : compiled.entryClasses) {
            if (name.contains("$")) continue; // nested: `java` runs only top-level classes
            first = first == null ? name : first;
            try {
                Class<?> c = compiled.loader.loadClass(name);
                Method m = c.getMethod("main", String[].class);
                if (Modifier.isStatic(m.getModifiers()) && (main == null || Modifier.isPublic(c.getModifiers()))) main = m;
            } catch (NoSuchMethodException ignored) {
            }
        }
        if (main == null) {
            System.err.println(first == null ? "error: no class declared in source file"
                    : "Error: Main method not found in class " + first
                    + ", please define the main method as:\n   public static void main(String[] args)");
            System.exit(1);
        }
        Thread.currentThread().setContextClassLoader(compiled.loader);
        main.setAccessible(true); // the class need not be public
        Set<Throwable> seen = Collections.newSetFromMap(new IdentityHashMap<>());
        try { // what the program throws is rethrown: the JVM prints it, waits for threads, exits 1
            main.invoke(null, (Object) args);
        } catch (InvocationTargetException e) {
            throw withoutLauncherFrames(e.getCause(), seen);
        } catch (ExceptionInInitializerError e) { // the main class's static initializer failed
            throw withoutLauncherFrames(e, seen);
        }
    }

    /** Drop the frames below the program's main (reflection, this class) from a throwable and its causes. */
    static Throwable withoutLauncherFrames(Throwable t, Set<Throwable> seen) {
        if (t == null || !seen.add(t)) return t;
        StackTraceElement[] frames = t.getStackTrace();
        for (int i = 0; i < frames.length; i++) {
            if (frames[i].getClassName().equals("Launcher") && "app".equals(frames[i].getClassLoaderName())) {
                while (i > 0 && frames[i - 1].getClassName().matches("(jdk\\.internal|java\\.lang)\\.reflect\\..*")) i--;
                t.setStackTrace(Arrays.copyOf(frames, i));
                break;
            }
        }
        withoutLauncherFrames(t.getCause(), seen);
        for (Throwable suppressed : t.getSuppressed()) withoutLauncherFrames(suppressed, seen);
        return t;
    }

    /** Writes to fd 3 as frames of one kind: at most 4091 payload bytes each, each with one write(2). */
    static final class Framed extends OutputStream {
        static final Object LOCK = new Object(); // one frame at a time, whatever the stream and thread
        final byte kind;

        Framed(char kind) { this.kind = (byte) kind; }

        @Override
        public void write(int b) throws IOException { write(new byte[] {(byte) b}, 0, 1); }

        @Override
        public void write(byte[] b, int off, int len) throws IOException {
            synchronized (LOCK) {
                while (len > 0) {
                    int n = Math.min(len, 4091);
                    // Cut between UTF-8 characters (never before a continuation byte) when a character allows it.
                    for (int back = 0; back < 3 && n < len && (b[off + n] & 0xc0) == 0x80; back++) n--;
                    channel.write(ByteBuffer.allocate(5 + n).put(kind).putInt(n).put(b, off, n).array());
                    off += n;
                    len -= n;
                }
            }
        }
    }

    /** An inherited descriptor: fd 4 is a socket, which /proc/self/fd/4 cannot open (hence --add-opens). */
    static FileDescriptor descriptor(int fd) throws ReflectiveOperationException {
        FileDescriptor descriptor = new FileDescriptor();
        Field field = FileDescriptor.class.getDeclaredField("fd");
        field.setAccessible(true);
        field.setInt(descriptor, fd);
        return descriptor;
    }

    static String readLine(InputStream in) throws IOException { // byte by byte: never reads past the line
        ByteArrayOutputStream line = new ByteArrayOutputStream();
        for (int b = in.read(); b != '\n'; b = in.read()) {
            if (b < 0) throw new EOFException("the control socket closed before a job came");
            line.write(b);
        }
        return line.toString(UTF_8);
    }

    /** Just enough JSON for the job line: objects, arrays, strings, true, false, null and numbers. */
    static final class Json {
        final String s;
        int i;

        Json(String s) { this.s = s; }

        Object value() {
            char c = skipSpace();
            if (c == '{' || c == '[') {
                Map<String, Object> map = new HashMap<>();
                List<Object> list = new ArrayList<>();
                for (i++; skipSpace() != (c == '{' ? '}' : ']'); i += skipSpace() == ',' ? 1 : 0) {
                    if (c == '[') {
                        list.add(value());
                    } else {
                        String key = (String) value();
                        skipSpace();
                        i++; // the ':'
                        map.put(key, value());
                    }
                }
                i++;
                return c == '{' ? map : list;
            }
            if (c == '"') {
                StringBuilder b = new StringBuilder();
                for (i++; (c = s.charAt(i++)) != '"'; b.append(c)) {
                    if (c != '\\') continue;
                    c = s.charAt(i++);
                    if (c == 'u') c = (char) Integer.parseInt(s.substring(i, i += 4), 16);
                    else if ("bfnrt".indexOf(c) >= 0) c = "\b\f\n\r\t".charAt("bfnrt".indexOf(c));
                }
                return b.toString();
            }
            int start = i;
            while (i < s.length() && ",:]} \t\r\n".indexOf(s.charAt(i)) < 0) i++;
            String word = s.substring(start, i);
            return word.equals("true") ? Boolean.TRUE : word.equals("false") ? Boolean.FALSE
                    : word.equals("null") ? null : (Object) Double.valueOf(word);
        }

        char skipSpace() {
            while (Character.isWhitespace(s.charAt(i))) i++;
            return s.charAt(i);
        }
    }
}
