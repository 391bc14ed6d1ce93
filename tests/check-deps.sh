#!/bin/sh
# check-deps.sh: .ci/deps, the first word of the README's two commands,
# with apt-get, dpkg-query and systemctl replaced by stand-ins that log
# their calls.  The run list holds no test tool; a service that was there
# before it ran (redis-server) is never stopped, one it installed (nginx)
# is.  Run by "make check"; exit 0 = pass.
srcdir=${srcdir:-.}
status=0
fail() { echo "FAIL: $*" >&2; status=1; }
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

run=$(sh "$srcdir/.ci/deps" --print run)
all=$(sh "$srcdir/.ci/deps" --print)
for p in chromium valgrind clang prometheus nginx-light wrk python3-pytest; do
	case " $run " in *" $p "*) fail "the run command would install $p" ;; esac
	case " $all " in *" $p "*) ;; *) fail "the test command would not install $p" ;; esac
done
for p in libhiredis-dev libconfuse-dev libevent-dev redis-server; do
	case " $run " in *" $p "*) ;; *) fail "the run command would not install $p" ;; esac
done

# Everything is installed but nginx-light: redis-server runs already.
mkdir "$tmp/bin"
cat > "$tmp/bin/dpkg-query" <<'STUB'
#!/bin/sh
for a; do p=$a; done
[ "$p" = nginx-light ] || printf 'install ok installed'
STUB
printf '#!/bin/sh\necho "apt-get $*" >> "%s/calls"\n' "$tmp" > "$tmp/bin/apt-get"
printf '#!/bin/sh\necho "systemctl $*" >> "%s/calls"\n' "$tmp" > "$tmp/bin/systemctl"
chmod +x "$tmp/bin/"*
PATH="$tmp/bin:$PATH" sh "$srcdir/.ci/deps" > "$tmp/out" 2>&1 || fail ".ci/deps failed: $(cat "$tmp/out")"
grep -q 'apt-get install .*nginx-light' "$tmp/calls" || fail "nginx-light was not installed"
grep -q 'systemctl stop nginx$' "$tmp/calls" || fail "the nginx it installed was not stopped"
if grep 'systemctl stop' "$tmp/calls" | grep -v 'stop nginx$'; then
	fail "it stopped a service it did not install"
fi
[ $status -eq 0 ] && echo "PASS: .ci/deps installs per command and stops only what it installed"
exit $status
