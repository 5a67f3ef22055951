# teleport-update — the two commands a newcomer types are `make demo` and `make test`.

GO ?= go
export GOTOOLCHAIN := local
export CGO_ENABLED := 0
FUZZTIME ?= 10s

.PHONY: demo demo-systemd test lint unit fuzz systemd package bench build clean

## demo: the whole product end to end on loopback (no root, no systemd)
demo:
	$(GO) run ./demo

## demo-systemd: the same against a real systemd in a container (root only)
demo-systemd:
	bash scripts/demo-systemd.sh

## test: everything CI runs (lint, unit + end-to-end tests, real systemd, fuzz smoke)
test:
	bash scripts/test.sh

lint:
	bash scripts/test.sh lint

unit:
	bash scripts/test.sh unit

fuzz:
	FUZZTIME=$(FUZZTIME) bash scripts/test.sh fuzz

systemd:
	bash scripts/test.sh systemd

## package: .deb and .rpm of teleport-update for amd64 and arm64 in dist/, checked (lintian, rpm -qlp)
VERSION ?= 0.0.0
package:
	bash scripts/package.sh $(VERSION) dist

## bench: every benchmark, as ratios against baselines measured in the same run
bench:
	bash bench/run.sh

build:
	$(GO) build -o bin/teleport-update ./cmd/teleport-update

clean:
	rm -rf bin dist
