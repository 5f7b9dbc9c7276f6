#!/bin/sh
# Builds package main from every .go file of the workspace with the compiler and the linker
# directly (no go command: it costs more than the compile and wants a writable build cache).
# The standard library is precompiled; /opt/coderunner/go/importcfg maps it (see go.Dockerfile).
set -e
tools=/usr/lib/go-1.19/pkg/tool/linux_amd64
cfg=/opt/coderunner/go/importcfg
sources=$(ls *.go | grep -v '_test\.go$')
"$tools/compile" -p main -complete -importcfg "$cfg" -pack -o /tmp/main.a $sources
"$tools/link" -s -w -importcfg "$cfg" -o main /tmp/main.a
