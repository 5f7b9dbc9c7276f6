# ruff: noqa: E501  (program sources read better unwrapped)
"""The same programs in every language, as users write them: the language suite's corpus."""

from __future__ import annotations

from typing import Any

Files = list[dict[str, str]]

HELLO = {
    "python": 'print("hello")',
    "javascript": 'console.log("hello")',
    "bash": "echo hello",
    "c": '#include <stdio.h>\nint main(void) { printf("hello\\n"); return 0; }',
    "cpp": '#include <iostream>\nint main() { std::cout << "hello" << std::endl; }',
    "java": (
        "public class Greeter {\n"
        '    public static void main(String[] args) { System.out.println("hello"); }\n}'
    ),
    "go": 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("hello") }',
    "rust": 'fn main() { println!("hello"); }',
}

ECHO = {
    "python": "print(input())",
    "javascript": "const s = require('fs').readFileSync(0, 'utf8');\nconsole.log(s.trim());",
    "bash": 'read -r line\necho "$line"',
    "c": (
        "#include <stdio.h>\nint main(void) {\n    char buf[256];\n"
        '    if (fgets(buf, sizeof buf, stdin)) printf("%s", buf);\n    return 0;\n}'
    ),
    "cpp": (
        "#include <iostream>\n#include <string>\n"
        "int main() { std::string s; std::getline(std::cin, s); std::cout << s << '\\n'; }"
    ),
    "java": (
        "import java.util.Scanner;\npublic class Main {\n    public static void main(String[] a) {\n"
        "        System.out.println(new Scanner(System.in).nextLine());\n    }\n}"
    ),
    "go": (
        'package main\n\nimport (\n\t"bufio"\n\t"fmt"\n\t"os"\n)\n\nfunc main() {\n'
        "\ts := bufio.NewScanner(os.Stdin)\n\ts.Scan()\n\tfmt.Println(s.Text())\n}"
    ),
    "rust": (
        "fn main() {\n    let mut s = String::new();\n    std::io::stdin().read_line(&mut s).unwrap();\n"
        '    println!("{}", s.trim_end());\n}'
    ),
}

EXIT_3 = {
    "python": "import sys\nsys.exit(3)",
    "javascript": "process.exit(3)",
    "bash": "exit 3",
    "c": "int main(void) { return 3; }",
    "cpp": "int main() { return 3; }",
    "java": "public class Main { public static void main(String[] a) { System.exit(3); } }",
    "go": 'package main\n\nimport "os"\n\nfunc main() { os.Exit(3) }',
    "rust": "fn main() { std::process::exit(3); }",
}

# A runtime error: the language's own message on stderr ("boom" in it, or the stated word).
RUNTIME_ERROR: dict[str, tuple[str, str]] = {
    "python": ('raise ValueError("boom")', "boom"),
    "javascript": ('throw new Error("boom")', "boom"),
    "bash": ("set -e\nno_such_command_boom", "not found"),
    "c": ("#include <assert.h>\nint main(void) { assert(1 == 2); return 0; }", "Assertion"),
    "cpp": (
        '#include <stdexcept>\nint main() { throw std::runtime_error("boom"); }',
        "boom",
    ),
    "java": (
        'public class Main { public static void main(String[] a) { throw new RuntimeException("boom"); } }',
        "boom",
    ),
    "go": ('package main\n\nfunc main() { panic("boom") }', "boom"),
    "rust": ('fn main() { panic!("boom"); }', "boom"),
}

COMPILE_ERROR = {
    "c": "int main(void) { return 0 }",
    "cpp": "int main() { return 0 }",
    "java": "public class Main { public static void main(String[] a) { int x = 1 } }",
    "go": "package main\n\nfunc main() { x := }",
    "rust": 'fn main() { let x: i32 = "s"; }',
}

MULTI_FILE: dict[str, Files] = {
    "python": [
        {"name": "main.py", "content": "import util\nprint(util.f())"},
        {"name": "util.py", "content": "def f():\n    return 'from util'"},
    ],
    "javascript": [
        {"name": "main.js", "content": "console.log(require('./util').f())"},
        {"name": "util.js", "content": "module.exports = { f: () => 'from util' };"},
    ],
    "bash": [
        {"name": "main.sh", "content": "source ./util.sh\nf"},
        {"name": "util.sh", "content": "f() { echo 'from util'; }"},
    ],
    "c": [
        {"name": "main.c", "content": '#include <stdio.h>\n#include "util.h"\nint main(void) { puts(f()); }'},
        {"name": "util.h", "content": "const char *f(void);"},
        {"name": "util.c", "content": '#include "util.h"\nconst char *f(void) { return "from util"; }'},
    ],
    "cpp": [
        {"name": "main.cpp", "content": '#include <iostream>\n#include "util.hpp"\nint main() { std::cout << f() << "\\n"; }'},
        {"name": "util.hpp", "content": "#include <string>\nstd::string f();"},
        {"name": "util.cpp", "content": '#include "util.hpp"\nstd::string f() { return "from util"; }'},
    ],
    "java": [
        {"name": "Main.java", "content": "public class Main { public static void main(String[] a) { System.out.println(Util.f()); } }"},
        {"name": "Util.java", "content": 'public class Util { static String f() { return "from util"; } }'},
    ],
    "go": [
        {"name": "main.go", "content": 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println(f()) }'},
        {"name": "util.go", "content": 'package main\n\nfunc f() string { return "from util" }'},
    ],
    "rust": [
        {"name": "main.rs", "content": 'mod util;\nfn main() { println!("{}", util::f()); }'},
        {"name": "util.rs", "content": 'pub fn f() -> &\'static str { "from util" }'},
    ],
}  # fmt: skip

ARGS = {
    "python": "import sys\nprint(' '.join(sys.argv[1:]))",
    "javascript": "console.log(process.argv.slice(2).join(' '))",
    "bash": 'echo "$@"',
    "c": (
        "#include <stdio.h>\nint main(int argc, char **argv) {\n"
        '    for (int i = 1; i < argc; i++) printf(i > 1 ? " %s" : "%s", argv[i]);\n'
        '    printf("\\n");\n}'
    ),
    "cpp": (
        "#include <iostream>\nint main(int argc, char **argv) {\n"
        '    for (int i = 1; i < argc; i++) std::cout << (i > 1 ? " " : "") << argv[i];\n'
        '    std::cout << "\\n";\n}'
    ),
    "java": (
        "public class Main { public static void main(String[] a) {"
        ' System.out.println(String.join(" ", a)); } }'
    ),
    "go": (
        'package main\n\nimport (\n\t"fmt"\n\t"os"\n\t"strings"\n)\n\n'
        'func main() { fmt.Println(strings.Join(os.Args[1:], " ")) }'
    ),
    "rust": (
        "fn main() {\n    let a: Vec<String> = std::env::args().skip(1).collect();\n"
        '    println!("{}", a.join(" "));\n}'
    ),
}

# Prints a line, then sleeps 2 s, then prints another: the first must be seen before the end.
LIVE = {
    "python": "import time\nprint('first')\ntime.sleep(2)\nprint('second')",
    "javascript": "console.log('first');\nsetTimeout(() => console.log('second'), 2000);",
    "bash": "echo first\nsleep 2\necho second",
    "c": (
        '#include <stdio.h>\n#include <unistd.h>\nint main(void) {\n    printf("first\\n");\n'
        '    sleep(2);\n    printf("second\\n");\n}'
    ),
    "cpp": (
        "#include <cstdio>\n#include <iostream>\n#include <unistd.h>\nint main() {\n"
        '    std::cout << "first" << "\\n";\n    sleep(2);\n    std::cout << "second" << "\\n";\n}'
    ),
    "java": (
        "public class Main { public static void main(String[] a) throws Exception {\n"
        '    System.out.println("first"); Thread.sleep(2000); System.out.println("second"); } }'
    ),
    "go": (
        'package main\n\nimport (\n\t"fmt"\n\t"time"\n)\n\nfunc main() {\n'
        '\tfmt.Println("first")\n\ttime.Sleep(2 * time.Second)\n\tfmt.Println("second")\n}'
    ),
    "rust": (
        'fn main() {\n    println!("first");\n'
        '    std::thread::sleep(std::time::Duration::from_secs(2));\n    println!("second");\n}'
    ),
}

LOOP = {
    "python": "while True:\n    pass",
    "javascript": "while (true) {}",
    "bash": "while :; do :; done",
    "c": "int main(void) { volatile int x = 0; for (;;) x++; }",
    "cpp": "int main() { volatile int x = 0; for (;;) x++; }",
    "java": "public class Main { public static void main(String[] a) { while (true) {} } }",
    "go": "package main\n\nfunc main() {\n\tfor {\n\t}\n}",
    "rust": "fn main() {\n    loop {}\n}",
}

MEMORY_BOMB = {
    "python": "a = []\nwhile True:\n    a.append(bytearray(10**7))",
    "javascript": "const a = [];\nwhile (true) a.push(Buffer.alloc(1e7, 1));",
    "bash": "a=xxxxxxxxxxxxxxxx\nwhile :; do a=$a$a; done",
    "c": (
        "#include <stdlib.h>\n#include <string.h>\nint main(void) {\n"
        "    for (;;) { char *p = malloc(1 << 24); memset(p, 1, 1 << 24); }\n}"
    ),
    "cpp": (
        "#include <vector>\nint main() {\n    std::vector<std::vector<char>> v;\n"
        "    for (;;) v.emplace_back(1 << 24, 1);\n}"
    ),
    "java": (
        "import java.util.*;\npublic class Main { public static void main(String[] a) {\n"
        "    List<byte[]> l = new ArrayList<>();\n"
        "    while (true) { byte[] b = new byte[1 << 24]; Arrays.fill(b, (byte) 1); l.add(b); } } }"
    ),
    "go": (
        "package main\n\nfunc main() {\n\tvar s [][]byte\n\tfor {\n\t\tb := make([]byte, 1<<24)\n"
        "\t\tfor i := range b {\n\t\t\tb[i] = 1\n\t\t}\n\t\ts = append(s, b)\n\t}\n}"
    ),
    "rust": "fn main() {\n    let mut v = Vec::new();\n    loop { v.push(vec![1u8; 1 << 24]); }\n}",
}

FLOOD = {
    "python": "while True:\n    print('x' * 1000)",
    "javascript": "const s = 'x'.repeat(1000);\nwhile (true) console.log(s);",
    "bash": "yes xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "c": '#include <stdio.h>\nint main(void) { for (;;) puts("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"); }',
    "cpp": '#include <iostream>\nint main() { for (;;) std::cout << "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\\n"; }',
    "java": (
        "public class Main { public static void main(String[] a) {"
        ' while (true) System.out.println("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"); } }'
    ),
    "go": 'package main\n\nimport "fmt"\n\nfunc main() {\n\tfor {\n\t\tfmt.Println("xxxxxxxxxxxxxxxxxxxxxxxxxxxxx")\n\t}\n}',
    "rust": 'fn main() { loop { println!("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"); } }',
}  # fmt: skip


def body(language: str, source: str | Files, **more: Any) -> dict[str, Any]:
    """An execute request for `source` (the code, or a list of files)."""
    code = {"files": source} if isinstance(source, list) else {"code": source}
    return {"language": language, **code, **more}
