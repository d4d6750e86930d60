# Convenience targets; the README's two commands are scripts/demo.sh and scripts/test.sh.
SWIFT ?= swift

.PHONY: build release test bench demo clean

build:
	$(SWIFT) build

release:
	$(SWIFT) build -c release

test:
	scripts/test.sh

bench:
	scripts/bench.sh

demo:
	scripts/demo.sh

clean:
	rm -rf .build
