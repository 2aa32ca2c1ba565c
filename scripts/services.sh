# Shared by scripts/test and scripts/load: make sure the local services the
# tests and benchmarks use are installed and running on 127.0.0.1.
# Sourced, not executed.

step() { printf '\n==> %s\n' "$*" >&2; }

apt_updated=0
apt_install() {
    if [ "$apt_updated" = 0 ]; then
        apt-get update -qq >&2
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for_port() {
    local port=$1 name=$2
    for _ in $(seq 1 100); do
        port_open "$port" && return 0
        sleep 0.1
    done
    echo "error: $name did not start listening on 127.0.0.1:$port" >&2
    return 1
}

ensure_postgres() {
    if port_open 5432; then return 0; fi
    if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
        step "installing PostgreSQL from Debian's packages"
        apt_install postgresql
        # Trust local TCP connections, as the test databases expect.
        local hba
        hba=$(ls /etc/postgresql/*/main/pg_hba.conf | head -n 1)
        sed -i -E 's/^(host\s+all\s+all\s+127\.0\.0\.1\/32\s+)\S+/\1trust/' "$hba"
    fi
    step "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
    wait_for_port 5432 PostgreSQL
}

ensure_mosquitto() {
    if ! command -v mosquitto >/dev/null 2>&1; then
        step "installing Mosquitto from Debian's packages"
        apt_install mosquitto
    fi
    # The mqtts test makes its certificates with openssl.
    if ! command -v openssl >/dev/null 2>&1; then
        step "installing openssl from Debian's packages"
        apt_install openssl
    fi
    # The system broker on 1883 is what a developer's devices may use; start it
    # when it is installed but down.
    if ! port_open 1883 && [ -f /etc/mosquitto/mosquitto.conf ]; then
        step "starting Mosquitto on 1883"
        mosquitto -d -c /etc/mosquitto/mosquitto.conf || true
    fi
}

# The test broker: real Mosquitto with the settings an ack-after-commit
# consumer needs (scripts/mosquitto-test.conf), on its own port.
ensure_test_broker() {
    if port_open 18831; then return 0; fi
    step "starting the test Mosquitto on 127.0.0.1:18831"
    local dir
    dir="$(pwd)/target/mosquitto-test"
    mkdir -p "$dir"
    { cat scripts/mosquitto-test.conf; echo "persistence_location $dir/"; echo "log_dest file $dir/mosquitto.log"; } > "$dir/mosquitto.conf"
    chmod 755 "$dir"
    # Mosquitto drops root privileges to the mosquitto user when that exists.
    if id mosquitto >/dev/null 2>&1; then chown mosquitto "$dir"; fi
    mosquitto -d -c "$dir/mosquitto.conf"
    wait_for_port 18831 "the test Mosquitto"
}

drop_stale_test_databases() {
    command -v psql >/dev/null 2>&1 || return 0
    # Four at a time: a test run leaves dozens, and dropping one waits for
    # its files to be removed.
    psql "$DATABASE_URL" -Atqc "select datname from pg_database where datname like 'tw\_test\_%'" 2>/dev/null |
        xargs -r -P 4 -I{} psql "$DATABASE_URL" -qc 'drop database if exists "{}" with (force)' >/dev/null 2>&1 || true
}

# The browser tests: Debian's Chromium, Node.js, and the npm packages in
# tests/browser (playwright-core drives the system Chromium; it downloads no
# browser of its own).
ensure_browser() {
    if [ ! -x /usr/bin/chromium ]; then
        step "installing Chromium from Debian's packages"
        apt_install chromium
    fi
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        step "installing Node.js and npm from Debian's packages"
        apt_install nodejs npm
    fi
    local stamp=tests/browser/node_modules/.package-lock.json
    if [ ! -d tests/browser/node_modules/playwright-core ] || [ tests/browser/package-lock.json -nt "$stamp" ]; then
        step "installing the browser tests' npm packages"
        npm ci --prefix tests/browser --no-audit --no-fund >&2
    fi
}
