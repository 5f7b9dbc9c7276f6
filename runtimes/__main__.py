from runtimes.cli import main

main()
