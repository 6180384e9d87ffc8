package IcpGate::Test;

# Test harness for the icp_gate nginx module.
#
# One object per test file: it owns a temp dir, hands out free ports, runs
# redis, the filing API stand-in (t/filing_api.py) and nginx, and speaks raw
# HTTP.  Everything it started is stopped when the object goes away or the
# test file ends, also when the test dies or gets SIGINT/SIGTERM/SIGHUP.
#
#   use FindBin; use lib "$FindBin::Bin/lib";
#   use IcpGate::Test;
#   my $t = IcpGate::Test->new;
#   $t->start_redis; $t->start_api;
#   $t->write_conf($t->conf_prelude . 'http { server { listen 127.0.0.1:%%HTTP_PORT%%; } }');
#   $t->start_nginx;
#   is $t->http(host => 'example.com')->{status}, 200;
#
# or, with the gated server of IcpGate::Conf, see gated() and finish():
#
#   my $t = IcpGate::Test->gated(redis => 1, api => { 'filed.cn' => 'filed' },
#                                conf => { main => 'icp_gate_ttl 1h;' });
#   is $t->get('live.filed.cn')->{status}, 200;
#   $t->finish;
#
# Environment: ICP_GATE_NGINX (nginx binary, default <repo>/build/sbin/nginx),
# ICP_GATE_PYTHON (default python3), ICP_GATE_KEEP (keep the temp dir), TMPDIR.

use v5.36;

use Config;
use Cwd ();
use File::Basename ();
use File::Path ();
use File::Temp ();
use IO::Select;
use IO::Socket::INET;
use JSON::PP ();
use POSIX ();
use Scalar::Util ();
use Test::More ();
use Time::HiRes qw(time sleep);
use IcpGate::Conf ();

# t/lib/IcpGate/Test.pm -> the repository root is three levels above this dir
our $REPO = Cwd::abs_path(File::Basename::dirname(__FILE__) . '/../../..');

# error.log lines that mean a crash or a sanitizer report.  nginx logs every
# normal worker exit as "worker process N exited with code 0" at notice level,
# so only a non-zero code counts.
our $CRASH_RE = qr/exited on signal|worker process \d+ exited with (?:fatal )?code [1-9]|AddressSanitizer|runtime error:|LeakSanitizer/;

my %LIVE;    # refaddr -> (weak) object, so END can clean up what is left

END {
    $_->cleanup for grep { defined } values %LIVE;
}

# ---------------------------------------------------------------- setup

sub new($class) {
    my $dir = File::Temp::tempdir('icp-gate-XXXXXXXX', TMPDIR => 1, CLEANUP => 0);
    $dir = Cwd::abs_path($dir);
    # nginx workers run as "nobody" when the tests run as root: let them write
    # their sanitizer reports and log files here.
    chmod 0777, $dir;
    mkdir "$dir/logs";    # nginx's default error log before it reads the config

    my $self = bless {
        dir   => $dir,
        owner => $$,
        nginx => $ENV{ICP_GATE_NGINX} // "$REPO/build/sbin/nginx",
        ports => {},
        taken => {},
    }, $class;

    my $addr = Scalar::Util::refaddr($self);
    $LIVE{$addr} = $self;
    Scalar::Util::weaken($LIVE{$addr});

    # Turn the usual termination signals into an exit so that END runs.
    my %signals = (INT => POSIX::SIGINT(), TERM => POSIX::SIGTERM(), HUP => POSIX::SIGHUP());
    for my $sig (sort keys %signals) {
        next if $SIG{$sig} && $SIG{$sig} ne 'DEFAULT';
        my $num = $signals{$sig};
        $SIG{$sig} = sub { exit 128 + $num };
    }
    delete $ENV{NGINX};
    return $self;
}

sub dir($self)       { $self->{dir} }
sub repo($self)      { $REPO }
sub nginx_bin($self) { $self->{nginx} }
sub nginx_pid($self) { $self->{nginx_pid} }
sub redis_pid($self) { $self->{redis_pid} }
sub api_pid($self)   { $self->{api_pid} }

# True while $pid runs (a zombie counts as gone: PID 1 may never reap nginx).
sub alive($self, $pid) { _alive($pid) }

# A free TCP port on 127.0.0.1, the same one each time for the same name.
sub port($self, $name) {
    return $self->{ports}{$name} //= $self->_free_port;
}

sub _free_port($self) {
    for (1 .. 100) {
        my $sock = IO::Socket::INET->new(
            LocalAddr => '127.0.0.1',
            LocalPort => 0,
            Proto     => 'tcp',
            Listen    => 1,
        ) or die "cannot bind a probe socket: $@";
        my $port = $sock->sockport;
        close $sock;
        return $port unless $self->{taken}{$port}++;
    }
    die "no free port found";
}

# ---------------------------------------------------------------- redis

sub redis_port($self) { $self->port('redis') }

# %o: bind => ADDRESS (127.0.0.1)
sub start_redis($self, %o) {
    die "redis already started" if $self->{redis_pid};
    my $port = $self->redis_port;
    my $host = $self->{redis_host} = $o{bind} // '127.0.0.1';
    my $log  = "$self->{dir}/redis.log";
    my $pid  = $self->_spawn($log,
        'redis-server', '--port', $port, '--bind', $host,
        '--save', '', '--appendonly', 'no', '--daemonize', 'no',
        '--dir', $self->{dir});
    $self->{redis_pid} = $pid;

    return $self->_await_service('redis-server', $pid, $log, 5, sub {
        my (undef, $out) = _run(cmd => ['redis-cli', '-h', $host, '-p', $port,
                                        'ping'],
                                stderr => 'null');
        return $out eq "PONG\n";
    });
}

sub stop_redis($self) { $self->_stop_service('redis_pid') }

# redis-cli -p PORT --raw ARGS...; stdout without its final newline, or lines.
sub redis($self, @args) {
    my (undef, $out) = _run(
        cmd    => ['redis-cli', '-h', $self->{redis_host} // '127.0.0.1',
                   '-p', $self->redis_port, '--raw', @args],
        stderr => 'keep',
    );
    chomp $out;
    return wantarray ? split(/\n/, $out) : $out;
}

# ---------------------------------------------------------------- filing API stand-in

sub api_port($self) { $self->port('api') }

# %opts: preset => FILE.json or a hashref (written to DIR/preset.json),
#        default => MODE
sub start_api($self, %opts) {
    die "filing api already started" if $self->{api_pid};
    my @cmd = ($ENV{ICP_GATE_PYTHON} // 'python3', "$REPO/t/filing_api.py",
               '--port', $self->api_port);
    if (my $preset = $opts{preset}) {
        if (ref $preset) {
            my $file = "$self->{dir}/preset.json";
            _write_file($file, JSON::PP->new->utf8->canonical->encode($preset));
            $preset = $file;
        }
        push @cmd, '--preset', $preset;
    }
    push @cmd, '--default', $opts{default} if defined $opts{default};

    my $log = "$self->{dir}/api.log";
    my $pid = $self->_spawn($log, @cmd);
    $self->{api_pid} = $pid;

    return $self->_await_service('filing api', $pid, $log, 10, sub {
        return $self->_api_request('total')->{status} == 200;
    });
}

sub stop_api($self) { $self->_stop_service('api_pid') }

# Polls $probe until a service started as $pid answers; dies with its log
# when it exits first or stays silent for $timeout s.  Returns $pid.
sub _await_service($self, $name, $pid, $log, $timeout, $probe) {
    my $up = $self->wait_for(sub {
        die "$name exited at start:\n" . ($self->read_file($log) // '')
            if waitpid($pid, POSIX::WNOHANG()) == $pid;
        return $probe->();
    }, $timeout);
    die "$name did not answer within $timeout s:\n"
        . ($self->read_file($log) // '') unless $up;
    return $pid;
}

sub _stop_service($self, $key) {
    my $pid = delete $self->{$key} or return;
    kill 'KILL', $pid;
    waitpid $pid, 0;
}

# %extra: delay_ms, icp, region
sub api_set($self, $domain, $mode, %extra) {
    $self->_api_control('set', domain => $domain, mode => $mode, %extra);
    return 1;
}

sub api_default($self, $mode, %extra) {
    $self->_api_control('default', mode => $mode, %extra);
    return 1;
}

sub api_count($self, $domain) { 0 + $self->_api_control('count', domain => $domain) }
sub api_total($self)          { 0 + $self->_api_control('total') }
sub api_counts($self)         { JSON::PP->new->utf8->decode($self->_api_control('counts')) }
sub api_reset($self)          { $self->_api_control('reset'); return 1 }
sub api_clear($self)          { $self->_api_control('clear'); return 1 }

sub api_headers($self, $domain) {
    return JSON::PP->new->utf8->decode($self->_api_control('headers', domain => $domain));
}

sub _api_control($self, $action, %params) {
    my $res = $self->_api_request($action, %params);
    die "filing api /_control/$action: status $res->{status}: $res->{body}"
        unless $res->{status} == 200;
    return $res->{body};
}

sub _api_request($self, $action, %params) {
    my $query = join '&',
        map { _uri_escape($_) . '=' . _uri_escape($params{$_}) } sort keys %params;
    my $port = $self->api_port;
    return $self->http(
        port    => $port,
        host    => "127.0.0.1:$port",
        path    => "/_control/$action" . ($query eq '' ? '' : "?$query"),
        timeout => 5,
    );
}

sub _uri_escape($text) {
    utf8::encode($text) if utf8::is_utf8($text);
    $text =~ s/([^A-Za-z0-9\-._~])/sprintf '%%%02X', ord $1/ge;
    return $text;
}

# ---------------------------------------------------------------- nginx config

# The standard head of a test nginx.conf.  %opts: workers (2), log_level (info).
sub conf_prelude($self, %opts) {
    my $workers = $opts{workers}   // 2;
    my $level   = $opts{log_level} // 'info';
    return <<~"EOF";
        daemon on;
        master_process on;
        worker_processes $workers;
        error_log $self->{dir}/error.log $level;
        pid $self->{dir}/nginx.pid;
        events { worker_connections 1024; }
        EOF
}

# Substitutes %%NAME%% placeholders and writes DIR/nginx.conf; returns its path.
sub write_conf($self, $text) {
    $text =~ s/%%([A-Za-z0-9_]+)%%/$self->_placeholder($1)/ge;
    utf8::encode($text) if utf8::is_utf8($text);
    my $file = "$self->{dir}/nginx.conf";
    _write_file($file, $text);
    $self->{conf} = $text;
    return $file;
}

sub _placeholder($self, $name) {
    my %ports = (HTTP_PORT => 'http', RTMP_PORT => 'rtmp',
                 REDIS_PORT => 'redis', API_PORT => 'api');
    my $port_name = $ports{$name} // ($name =~ /^PORT_(\w+)$/ ? $1 : undef);
    if (defined $port_name) {
        $self->{uses_http_port} = 1 if $port_name eq 'http';
        return $self->port($port_name);
    }
    return $self->{dir} if $name eq 'DIR';
    # auto_push between the workers, as every multi-worker RTMP test has it
    return "rtmp_auto_push on;\nrtmp_auto_push_reconnect 100ms;\n"
         . "rtmp_socket_dir $self->{dir};" if $name eq 'AUTO_PUSH';
    return 'http://127.0.0.1:' . $self->api_port . '/v1/filing/{domain}' if $name eq 'API_URL';
    die "write_conf: unknown placeholder %%$name%%\n";
}

# ---------------------------------------------------------------- nginx processes

# Before any nginx run: sanitizer reports go to DIR/asan.PID, DIR/ubsan.PID,
# and no NGINX variable (nginx would take it for inherited sockets).
sub _prepare_nginx_env($self) {
    $ENV{ASAN_OPTIONS}  = "log_path=$self->{dir}/asan:detect_leaks=0:abort_on_error=0";
    $ENV{UBSAN_OPTIONS} = "log_path=$self->{dir}/ubsan:print_stacktrace=1:halt_on_error=0"
        . ":suppressions=$REPO/t/ubsan.supp";
    delete $ENV{NGINX};
}

sub _nginx_cmd($self, @args) {
    return ($self->{nginx}, '-p', "$self->{dir}/", '-c', "$self->{dir}/nginx.conf", @args);
}

# Runs the nginx binary with extra arguments; returns (exit code, stdout+stderr).
sub _nginx($self, @args) {
    $self->_prepare_nginx_env;
    return _run(cmd => [$self->_nginx_cmd(@args)], stderr => 'merge');
}

sub nginx_test($self) { $self->_nginx('-t') }

# The rtmp host module the binary was built with: 'flv' for
# nginx-http-flv-module, 'rtmp' for nginx-rtmp-module, '' for none.
sub rtmp_host($self) {
    my $v = $self->{rtmp_host} //= do {
        my (undef, $out) = _run(cmd => [$self->{nginx}, '-V'], stderr => 'merge');
        $out =~ /nginx-http-flv-module/ ? 'flv'
            : $out =~ /nginx-rtmp-module/ ? 'rtmp' : '';
    };
    return $v;
}

sub start_nginx($self) {
    die "nginx already running" if $self->{nginx_pid} && _alive($self->{nginx_pid});
    die "nginx binary $self->{nginx} not found (set ICP_GATE_NGINX or build it)\n"
        unless -x $self->{nginx};
    $self->_prepare_nginx_env;

    my $pid_file = "$self->{dir}/nginx.pid";
    my $stderr   = "$self->{dir}/nginx.stderr";
    unlink $pid_file;
    my $launcher = $self->_spawn($stderr, $self->_nginx_cmd);
    my $deadline = time + 10;
    my $fail = sub ($why) {
        die "nginx $why\n--- nginx stderr:\n" . ($self->read_file($stderr) // '')
          . "--- error.log:\n" . $self->error_log;
    };

    # With "daemon on" the launcher exits 0 once it has forked the master;
    # with "daemon off" it is the master.
    my $master;
    until ($master) {
        if ($launcher && waitpid($launcher, POSIX::WNOHANG()) == $launcher) {
            $fail->('failed to start: exit status ' . _exit_code($?)) if $?;
            undef $launcher;
        }
        my $pid = $self->_read_pid_file;
        $master = $pid if $pid && _alive($pid);
        $fail->('wrote no pid file within 10 s') if !$master && time > $deadline;
        sleep 0.05 unless $master;
    }
    $self->{nginx_pid} = $master;

    if ($self->{uses_http_port}) {
        my $port = $self->port('http');
        $self->wait_for(sub { _can_connect($port) }, $deadline - time)
            or $fail->("does not accept connections on port $port");
    }
    if (($self->{conf} // '') !~ /^\s*master_process\s+off\s*;/m) {
        # all of them: a test compares the workers before and after
        my ($want) = ($self->{conf} // '') =~ /^\s*worker_processes\s+(\d+)\s*;/m;
        $want //= 1;
        $self->wait_for(sub { scalar(my @w = $self->worker_pids) >= $want },
                        $deadline - time)
            or $fail->("started fewer than $want worker processes");
    }
    return $master;
}

sub _read_pid_file($self) {
    my $text = $self->read_file("$self->{dir}/nginx.pid") // return;
    return $text =~ /^(\d+)\n/ ? $1 : undef;
}

# nginx -s quit, wait for the master to go away (max 10 s), then SIGKILL.
# Returns true when nginx quit by itself.
sub stop_nginx($self) {
    my $master = $self->{nginx_pid} or return 1;
    my ($code) = $self->_nginx('-s', 'quit');
    kill 'QUIT', $master if $code != 0;
    my $quit = $self->_await_or_kill($master, 10);
    delete $self->{nginx_pid};
    return $quit;
}

sub _await_or_kill($self, $master, $grace) {
    return 1 if $self->wait_for(sub { !_alive($master) }, $grace);
    Test::More::diag("nginx master $master did not exit within $grace s, killing it");
    kill 'KILL', $master, $self->worker_pids;
    $self->wait_for(sub { !_alive($master) }, 2);
    return 0;
}

# nginx -s reload, then wait until none of the old worker pids is left
# (max $timeout s).  Returns true when the workers were all replaced.
sub reload($self, $timeout = 10) {
    my %old = map { $_ => 1 } $self->worker_pids;
    my ($code, $out) = $self->_nginx('-s', 'reload');
    if ($code != 0) {
        Test::More::diag("nginx -s reload failed ($code): $out");
        return 0;
    }
    return $self->wait_for(sub {
        my @now = $self->worker_pids;
        return @now && !grep { $old{$_} } @now;
    }, $timeout) ? 1 : 0;
}

sub reopen($self) {
    my ($code, $out) = $self->_nginx('-s', 'reopen');
    Test::More::diag("nginx -s reopen failed ($code): $out") if $code != 0;
    return $code == 0;
}

# Children of the master whose command line says "worker process", sorted.
sub worker_pids($self) {
    my $master = $self->{nginx_pid} or return;
    opendir(my $dh, '/proc') or return;
    my @workers;
    for my $pid (grep { /^\d+$/ } readdir $dh) {
        my $stat = _slurp("/proc/$pid/stat") // next;
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses
        my ($ppid) = substr($stat, rindex($stat, ')') + 2) =~ /^\S+ (\d+)/ or next;
        next unless $ppid == $master;
        my $cmdline = _slurp("/proc/$pid/cmdline") // next;
        push @workers, $pid if $cmdline =~ /worker process/;
    }
    my @sorted = sort { $a <=> $b } @workers;
    return @sorted;    # (a bare "return sort" is undefined in scalar context)
}

# ---------------------------------------------------------------- the usual test file

# The head most test files share, in one call: a new object with the
# services asked for, the config written and nginx started.  %o:
#   redis       => 1                     start redis-server
#   api         => { DOMAIN => MODE | [MODE, %extra], ... }
#   api_default => MODE | [MODE, %extra] start the filing API stand-in with
#                                        these modes (api => {} for none)
#   conf        => { gate_conf options }, or TEXT: conf_prelude then TEXT
#   nginx       => 0                     write the config, start no nginx
#                                        (the test prepares more first)
# nginx starts when there is a config, unless nginx => 0.
sub gated($class, %o) {
    # a misspelt option would quietly leave something unstarted
    my @unknown = grep { !/^(?:redis|api|api_default|conf|nginx)$/ } sort keys %o;
    die "gated: unknown option @unknown\n" if @unknown;

    my $t = $class->new;
    $t->start_redis if $o{redis};
    if ($o{api} || defined $o{api_default}) {
        $t->start_api;
        my $api = $o{api} // {};
        $t->api_set($_, ref $api->{$_} ? @{ $api->{$_} } : $api->{$_})
            for sort keys %$api;    # sorted: the same order on every run
        my $default = $o{api_default};
        $t->api_default(ref $default ? @$default : $default) if defined $default;
    }
    if (defined(my $conf = $o{conf})) {
        $t->write_conf(ref $conf ? IcpGate::Conf::gate_conf($t, %$conf)
                                 : $t->conf_prelude . $conf);
        $t->start_nginx if $o{nginx} // 1;
    }
    return $t;
}

# The tail they share: nginx stopped first, so that a crash on the way out
# is caught too, then the crash check (one test) and the end of the plan.
sub finish($self) {
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    $self->stop_nginx;
    $self->done_cleanly;
    Test::More::done_testing();
}

# ---------------------------------------------------------------- HTTP client

# One raw HTTP request to 127.0.0.1; returns { status, headers, body, raw,
# elapsed } (plus timed_out / error when so).  status is 0 when nothing came.
# %args: host, path (/), method (GET), headers ([[name, value], ...]), body,
#        version, port (port('http')), timeout (10 s).
sub http($self, %args) {
    my $port    = $args{port}    // $self->port('http');
    my $timeout = $args{timeout} // 10;
    my $method  = $args{method}  // 'GET';
    my $path    = $args{path}    // '/';
    my $version = $args{version} // (defined $args{host} ? 'HTTP/1.1' : 'HTTP/1.0');
    my $body    = $args{body};

    my @headers;
    push @headers, ['Host', $args{host}] if defined $args{host};
    push @headers, @{ $args{headers} // [] };
    my %sent = map { lc $_->[0] => 1 } @headers;
    push @headers, ['Connection', 'close'] unless $sent{connection};
    push @headers, ['Content-Length', length $body] if defined $body && !$sent{'content-length'};

    my $request = "$method $path $version\r\n"
        . join('', map { "$_->[0]: $_->[1]\r\n" } @headers)
        . "\r\n" . ($body // '');
    utf8::encode($request) if utf8::is_utf8($request);

    my $start  = time;
    my %result = (status => 0, headers => {}, body => '', raw => '');
    my $done   = sub { $result{elapsed} = time - $start; return \%result };

    local $SIG{PIPE} = 'IGNORE';
    my $sock = IO::Socket::INET->new(
        PeerAddr => '127.0.0.1',
        PeerPort => $port,
        Proto    => 'tcp',
        Timeout  => $timeout,
    );
    unless ($sock) {
        $result{error} = "connect to port $port: " . ($@ || $!);
        return $done->();
    }

    my $deadline = $start + $timeout;
    my $offset = 0;
    while ($offset < length $request) {
        my $n = syswrite($sock, $request, length($request) - $offset, $offset);
        last unless $n;    # the server closed early; read what it said
        $offset += $n;
    }

    my $select = IO::Select->new($sock);
    my $raw = '';
    while (1) {
        my $left = $deadline - time;
        if ($left <= 0 || !$select->can_read($left)) {
            $result{timed_out} = 1;
            last;
        }
        my $n = sysread($sock, my $chunk, 65536);
        last unless $n;    # EOF, or reset by peer
        $raw .= $chunk;
        last if _response_complete($raw, $method);
    }
    close $sock;

    $result{raw} = $raw;
    _parse_response($raw, \%result);
    return $done->();
}

# True when $raw holds a whole response with a Content-Length, so a request
# that asked for keep-alive does not wait for the timeout.
sub _response_complete($raw, $method) {
    my $end = index($raw, "\r\n\r\n");
    return 0 if $end < 0;
    my $head = substr($raw, 0, $end);
    return 1 if $method eq 'HEAD' || $head =~ m{\AHTTP/\S+ (?:1\d\d|204|304)\b};
    return 0 unless $head =~ /^content-length:\s*(\d+)\s*$/mi;
    return length($raw) - $end - 4 >= $1;
}

sub _parse_response($raw, $result) {
    my $end = index($raw, "\r\n\r\n");
    my ($head, $body) = $end < 0 ? ($raw, '') : (substr($raw, 0, $end), substr($raw, $end + 4));
    my ($status_line, @lines) = split /\r\n/, $head;
    return unless defined $status_line && $status_line =~ m{^HTTP/\d\.\d (\d{3})};
    $result->{status} = 0 + $1;
    for my $line (@lines) {
        my ($name, $value) = $line =~ /^([^:]+):\s*(.*?)\s*$/ or next;
        $name = lc $name;
        $result->{headers}{$name} = exists $result->{headers}{$name}
            ? "$result->{headers}{$name}, $value" : $value;
    }
    $body = _dechunk($body) if ($result->{headers}{'transfer-encoding'} // '') =~ /chunked/i;
    $result->{body} = $body;
}

sub _dechunk($data) {
    my $body = '';
    while ($data =~ s/\A([0-9a-fA-F]+)[^\r\n]*\r\n//) {
        my $size = hex $1;
        last if $size == 0;
        $body .= substr($data, 0, $size, '');
        $data =~ s/\A\r\n//;
    }
    return $body;
}

# the usual request of the tests: GET $path with a Host header
sub get($self, $host, $path = '/index.html', %args) {
    return $self->http(host => $host, path => $path, %args);
}

# $n children each do http(%args) at the same moment; arrayref of statuses,
# in child order.  An argument may be a code ref: child $i uses ->($i).
sub http_parallel($self, $n, %args) {
    pipe(my $gate_r, my $gate_w) or die "pipe: $!";
    pipe(my $result_r, my $result_w) or die "pipe: $!";
    STDOUT->flush;
    STDERR->flush;

    my @pids;
    for my $i (0 .. $n - 1) {
        my $pid = fork // die "fork: $!";
        if ($pid == 0) {
            close $gate_w;
            close $result_r;
            sysread $gate_r, my $byte, 1;    # returns at EOF: the gate opened
            # a code ref gives each child its own: host => sub ($i) {...}
            my %mine = map { $_ => ref $args{$_} eq 'CODE' ? $args{$_}->($i)
                                                          : $args{$_} } keys %args;
            my $status = eval { $self->http(%mine)->{status} } // 0;
            syswrite $result_w, "$i $status\n";
            POSIX::_exit(0);
        }
        push @pids, $pid;
    }
    close $gate_r;
    close $result_w;
    close $gate_w;    # every child sees EOF now and sends its request

    my @statuses = (0) x $n;
    while (my $line = <$result_r>) {
        my ($i, $status) = split ' ', $line;
        $statuses[$i] = 0 + $status;
    }
    close $result_r;
    waitpid $_, 0 for @pids;
    return \@statuses;
}

# The metrics of $IcpGate::Conf::METRICS_SERVER: (name{labels} => value,
# the response), from the text format
sub metrics($self) {
    my $r = $self->http(port => $self->port('ops'), host => 'ops',
                        path => '/metrics');
    die "metrics: status $r->{status}\n" unless $r->{status} == 200;
    my %m;
    for (split /\n/, $r->{body}) {
        next if /^#/;
        /^(\S+) (-?[\d.e+]+)$/ or die "metrics: bad line \"$_\"\n";
        $m{$1} = $2;
    }
    return (\%m, $r);
}

# The version of the nginx under test, as a number: 1.29.4 is 1029004
sub nginx_version($self) {
    my $out = `'$self->{nginx}' -v 2>&1`;
    my ($major, $minor, $patch) = $out =~ m{nginx/(\d+)\.(\d+)\.(\d+)}
        or die "nginx -v: $out";
    return $major * 1000000 + $minor * 1000 + $patch;
}

# ---------------------------------------------------------------- logs and files

sub error_log($self) {
    return $self->read_file("$self->{dir}/error.log") // '';
}

# error.log lines that tell of a crash or a sanitizer report, then the
# contents of each sanitizer log file (DIR/asan.*, DIR/ubsan.*).
sub crashes($self) {
    my @found = grep { /$CRASH_RE/ } split /\n/, $self->error_log;
    opendir(my $dh, $self->{dir}) or return @found;
    for my $name (sort grep { /^u?bsan\.|^asan\./ } readdir $dh) {
        my $text = $self->read_file("$self->{dir}/$name") // next;
        push @found, "$name:\n$text" if length $text;
    }
    return @found;
}

# One decoded JSON object per non-empty line; a line that is not a JSON
# object comes back as { __invalid => $line }.
sub log_lines($self, $path) {
    my $text = $self->read_file($path) // return;
    my $json = JSON::PP->new->utf8;
    my @objects;
    for my $line (grep { /\S/ } split /\n/, $text) {
        my $value = eval { $json->decode($line) };
        push @objects, ref $value eq 'HASH' ? $value : { __invalid => $line };
    }
    return @objects;
}

# The raw bytes of a file (relative paths are under DIR); undef if unreadable.
sub read_file($self, $path) {
    $path = "$self->{dir}/$path" unless $path =~ m{^/};
    return _slurp($path);
}

# Polls $code every 50 ms until it returns true or $timeout s have passed;
# returns its last value.
sub wait_for($self, $code, $timeout = 5) {
    my $deadline = time + $timeout;
    while (1) {
        my $value = $code->();
        return $value if $value || time >= $deadline;
        sleep 0.05;
    }
}

sub done_cleanly($t) {
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    return Test::More::is_deeply([$t->crashes], [], 'no crash or sanitizer report');
}

# ---------------------------------------------------------------- cleanup

# Stops everything this object started and removes the temp dir (unless
# ICP_GATE_KEEP is set).  Safe to call more than once.
sub cleanup($self) {
    return if $self->{cleaned} || $$ != $self->{owner};
    $self->{cleaned} = 1;
    local ($?, $!, $@);

    if (my $master = $self->{nginx_pid}) {
        if (_alive($master)) {
            kill 'QUIT', $master;
            $self->_await_or_kill($master, 5);
        }
        delete $self->{nginx_pid};
    }
    $self->stop_api;
    $self->stop_redis;

    if ($ENV{ICP_GATE_KEEP}) {
        print STDERR "# IcpGate::Test: kept $self->{dir}\n";
    } else {
        File::Path::remove_tree($self->{dir});
    }
}

sub DESTROY($self) {
    delete $LIVE{ Scalar::Util::refaddr($self) };
    $self->cleanup;
}

# ---------------------------------------------------------------- helpers

# Starts @cmd in the background with stdout and stderr appended to $log.
sub _spawn($self, $log, @cmd) {
    my $pid = fork // die "fork: $!";
    return $pid if $pid;

    open STDIN, '<', '/dev/null';
    open STDOUT, '>>', $log or POSIX::_exit(126);
    open STDERR, '>&', \*STDOUT;
    delete $ENV{NGINX};
    _die_with_parent();
    exec { $cmd[0] } @cmd
        or print STDERR "exec $cmd[0]: $!\n";
    POSIX::_exit(127);
}

# Runs a command to completion and returns (exit code, stdout).
# %opts: cmd => [...], stderr => 'keep' | 'null' | 'merge'.
sub _run(%opts) {
    my @cmd = @{ $opts{cmd} };
    pipe(my $read, my $write) or die "pipe: $!";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        close $read;
        open STDIN, '<', '/dev/null';
        open STDOUT, '>&', $write;
        my $stderr = $opts{stderr} // 'keep';
        open STDERR, '>', '/dev/null' if $stderr eq 'null';
        open STDERR, '>&', $write if $stderr eq 'merge';
        delete $ENV{NGINX};
        exec { $cmd[0] } @cmd
            or print STDERR "exec $cmd[0]: $!\n";
        POSIX::_exit(127);
    }
    close $write;
    my $out = do { local $/; <$read> } // '';
    close $read;
    waitpid $pid, 0;
    return (_exit_code($?), $out);
}

sub _exit_code($status) {
    return $status & 127 ? 128 + ($status & 127) : $status >> 8;
}

# Asks the kernel to SIGKILL this (child) process when its parent dies, so a
# test killed with SIGKILL does not leave redis or the api running.
sub _die_with_parent() {
    my %prctl = (x86_64 => 157, aarch64 => 167);    # syscall numbers
    my ($arch) = $Config{archname} =~ /^(x86_64|aarch64)/ or return;
    my $PR_SET_PDEATHSIG = 1;
    syscall($prctl{$arch}, $PR_SET_PDEATHSIG, 9);
}

sub _alive($pid) {
    waitpid $pid, POSIX::WNOHANG();    # reaps it if it is our own child
    return 0 unless kill 0, $pid;
    my $stat = _slurp("/proc/$pid/stat") // return 0;
    return $stat !~ /\) [ZX] /;        # a zombie is gone for our purposes
}

sub _can_connect($port) {
    my $sock = IO::Socket::INET->new(
        PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp', Timeout => 1,
    ) or return 0;
    close $sock;
    return 1;
}

sub _slurp($path) {
    open(my $fh, '<:raw', $path) or return undef;
    local $/;
    my $text = <$fh>;
    return $text // '';
}

sub _write_file($path, $text) {
    open(my $fh, '>:raw', $path) or die "cannot write $path: $!";
    print $fh $text;
    close $fh or die "cannot write $path: $!";
}

1;
