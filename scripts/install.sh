#!/usr/bin/env bash
# Creates .venv (Python 3.11+) and installs the project with its dev tools; safe to rerun.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
# The tests and `syncctl dev` run a private Dovecot (Debian's dovecot-imapd) on a loopback port.
if ! command -v dovecot >/dev/null 2>&1 && [ ! -x /usr/sbin/dovecot ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && apt_updated=1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dovecot-imapd >/dev/null
  else
    echo "Dovecot is missing: install Debian's dovecot-imapd (apt-get install dovecot-imapd);" \
      "the tests need it, and syncctl dev then falls back to the demo executor" >&2
  fi
fi
# The status page's browser tests drive Debian's chromium by its path (Playwright's own
# browser download cannot be reached from these machines).
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    [ -n "${apt_updated:-}" ] || apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
  else
    echo "Chromium is missing: install Debian's chromium (apt-get install chromium);" \
      "the status page's browser tests need it at /usr/bin/chromium" >&2
  fi
fi
# The OAuth2 tests run a real OpenID Connect provider: npm's oidc-provider, pinned, under Node,
# in the git-ignored .oidc/ (tests/oidc/provider.mjs configures and serves it).
OIDC_PROVIDER=oidc-provider@9.13.3
if ! grep -qs '"version": "9.13.3"' .oidc/node_modules/oidc-provider/package.json; then
  if ! command -v npm >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    [ -n "${apt_updated:-}" ] || apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  fi
  if command -v npm >/dev/null 2>&1; then
    mkdir -p .oidc
    npm install --silent --no-audit --no-fund --prefix .oidc "$OIDC_PROVIDER" >/dev/null
  else
    echo "npm is missing: install Node.js and npm (apt-get install nodejs npm);" \
      "the OAuth2 tests run $OIDC_PROVIDER" >&2
  fi
fi
# Apache Kafka (the real-Kafka test tier, `syncctl dev --kafka apache`): the broker's jars from
# Maven Central, run by the machine's Java 17+. Fetched once per pinned version.
kafka_version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' scripts/apache-kafka/pom.xml)
kafka_libs=.apache-kafka/$kafka_version/libs
if [ ! -f "$kafka_libs/.complete" ]; then
  if ! command -v java >/dev/null 2>&1 || ! command -v mvn >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      [ -n "${apt_updated:-}" ] || apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        openjdk-17-jre-headless maven >/dev/null
    else
      echo "Java 17+ and Maven are missing: install Debian's openjdk-17-jre-headless and maven" \
        "(apt-get install openjdk-17-jre-headless maven); the real-Kafka tests need them" >&2
    fi
  fi
  if command -v mvn >/dev/null 2>&1; then
    rm -rf "$kafka_libs"
    mvn -q -B -f scripts/apache-kafka/pom.xml dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$PWD/$kafka_libs"
    touch "$kafka_libs/.complete"
  fi
fi
