"""The composition root: the `coderunner` command, which puts the app and the workers into
processes, and the embedded Redis of `coderunner dev`. Nothing else imports it."""
