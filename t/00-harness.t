# Self-test of the test harness (t/lib/IcpGate/Test.pm) and of the filing API
# stand-in (t/filing_api.py).  Needs redis-server and python3, not nginx.

use v5.36;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use JSON::PP ();
use POSIX ();
use Time::HiRes qw(time);
use IcpGate::Test;

binmode Test::More->builder->$_, ':encoding(UTF-8)' for qw(output failure_output todo_output);

my $json = JSON::PP->new->utf8;
my $t = IcpGate::Test->new;

subtest 'temp dir, ports, config' => sub {
    ok -d $t->dir, 'temp dir exists';
    ok !exists $ENV{NGINX}, 'NGINX is not in the environment';
    like $t->nginx_bin, qr{/sbin/nginx$}, 'knows an nginx binary path';

    my $http = $t->port('http');
    is $t->port('http'), $http, 'port is memoised per name';
    isnt $t->port('other'), $http, 'different names get different ports';
    ok $http > 0 && $http < 65536, "port $http is a port number";

    my $prelude = $t->conf_prelude;
    like $prelude, qr/^worker_processes 2;$/m, 'prelude: 2 workers by default';
    like $prelude, qr/^daemon on;$/m, 'prelude: daemon on';
    like $prelude, qr/^pid \Q${\ $t->dir}\E\/nginx\.pid;$/m, 'prelude: pid file in the temp dir';
    like $prelude, qr/^error_log \Q${\ $t->dir}\E\/error\.log info;$/m, 'prelude: error log';
    like $t->conf_prelude(workers => 4), qr/^worker_processes 4;$/m, 'prelude: workers option';

    my $file = $t->write_conf(
        "a %%HTTP_PORT%% b %%RTMP_PORT%% c %%REDIS_PORT%% d %%API_PORT%%\n"
      . "e %%API_URL%% f %%DIR%% g %%PORT_extra%% h %%PORT_http%%\n");
    is $file, $t->dir . '/nginx.conf', 'write_conf returns the config path';
    my $dir = $t->dir;
    my ($http_port, $rtmp, $redis, $api, $extra) = map { $t->port($_) } qw(http rtmp redis api extra);
    is $t->read_file('nginx.conf'),
        "a $http_port b $rtmp c $redis d $api\n"
      . "e http://127.0.0.1:$api/v1/filing/{domain} f $dir g $extra h $http_port\n",
        'placeholders substituted';
    ok !eval { $t->write_conf('x %%NO_SUCH%%'); 1 }, 'unknown placeholder dies';
    like $@, qr/NO_SUCH/, '... naming the placeholder';
};

subtest 'redis' => sub {
    $t->start_redis;
    ok $t->redis_pid, 'redis-server started';
    is $t->redis('PING'), 'PONG', 'ping';
    is $t->redis('SET', 'icp:example.com', 'filed'), 'OK', 'set';
    is $t->redis('GET', 'icp:example.com'), 'filed', 'get round-trip';
    is $t->redis('SET', 'with space', "two words"), 'OK', 'set with spaces (no shell)';
    is $t->redis('GET', 'with space'), 'two words', 'get with spaces';
    $t->redis('RPUSH', 'list', 'a', 'b', 'c');
    is_deeply [$t->redis('LRANGE', 'list', 0, -1)], [qw(a b c)], 'list context gives lines';
    is $t->redis('GET', 'missing'), '', 'missing key is empty';
};

subtest 'filing api modes' => sub {
    $t->start_api;
    ok $t->api_pid, 'filing api started';
    my $port = $t->api_port;
    my $get = sub ($domain, %more) {
        return $t->http(port => $port, host => "127.0.0.1:$port",
                        path => "/v1/filing/$domain", %more);
    };

    my $res = $get->('example.com');
    is $res->{status}, 404, 'default mode is 404';
    is $res->{body}, '', '404 has an empty body';

    $t->api_set('example.com', 'filed');
    $res = $get->('example.com');
    is $res->{status}, 200, 'filed: 200';
    like $res->{headers}{'content-type'}, qr{^application/json}, 'filed: JSON content type';
    is_deeply $json->decode($res->{body}),
        { domain => 'example.com', status => 'filed', icp => '京ICP备12345678号-1' },
        'filed: default icp, no region';
    my $text = $res->{body};
    utf8::decode($text);
    like $text, qr/京/, q{UTF-8 in the body, not \\u escapes};

    $t->api_set('custom.example', 'filed', icp => '沪ICP备87654321号', region => 'mainland');
    is_deeply $json->decode($get->('custom.example')->{body}),
        { domain => 'custom.example', status => 'filed', icp => '沪ICP备87654321号', region => 'mainland' },
        'filed: configured icp and region';

    for my $mode (qw(pending revoked unfiled)) {
        $t->api_set("$mode.example", $mode);
        $res = $get->("$mode.example");
        is $res->{status}, 200, "$mode: 200";
        is_deeply $json->decode($res->{body}), { domain => "$mode.example", status => $mode },
            "$mode: status and no icp";
    }
    $t->api_set('overseas.example', 'unfiled', region => 'overseas');
    is_deeply $json->decode($get->('overseas.example')->{body}),
        { domain => 'overseas.example', status => 'unfiled', region => 'overseas' },
        'unfiled with region';

    $t->api_set('err.example', '500');
    $res = $get->('err.example');
    is $res->{status}, 500, '500: status';
    is $res->{body}, 'oops', '500: body';

    $t->api_set('nf.example', '404');
    is $get->('nf.example')->{status}, 404, '404 mode';

    my %fixed = (garbage => '{"status": "filed"', badstatus => '{"status":"maybe"}',
                 notobject => '["filed"]');
    for my $mode (sort keys %fixed) {
        $t->api_set("$mode.example", $mode);
        $res = $get->("$mode.example");
        is $res->{status}, 200, "$mode: 200";
        is $res->{body}, $fixed{$mode}, "$mode: body";
    }
    ok !eval { $json->decode($get->('garbage.example')->{body}); 1 }, 'garbage does not parse';

    $t->api_set('Mixed.Example', 'pending');
    $res = $get->('MIXED.example');
    is $json->decode($res->{body})->{status}, 'pending', 'domains are matched case-insensitively';
    is $t->api_count('mixed.EXAMPLE'), 1, '... and counted lower-cased';

    $res = $get->('example.com?token=abc&x=1');
    is $json->decode($res->{body})->{status}, 'filed', 'a query string is accepted';

    $t->api_default('unfiled');
    is $json->decode($get->('anything.example')->{body})->{status}, 'unfiled', 'api_default';
    $t->api_default('404');

    ok !eval { $t->api_set('x.example', 'bogus'); 1 }, 'an unknown mode is refused';
    like $@, qr/400/, '... with 400';

    is $t->http(port => $port, host => '127.0.0.1', path => '/elsewhere')->{status}, 404,
        'other paths: 404';
    is $t->http(port => $port, host => '127.0.0.1', path => '/_control/set?domain=p.example&mode=filed',
                method => 'POST', body => '')->{body}, 'ok', 'control works with POST too';
};

subtest 'delays and hang' => sub {
    my $port = $t->api_port;
    $t->api_set('slow.example', 'filed', delay_ms => 400);
    my $res = $t->http(port => $port, host => '127.0.0.1', path => '/v1/filing/slow.example');
    is $res->{status}, 200, 'delayed answer';
    cmp_ok $res->{elapsed}, '>=', 0.4, "elapsed $res->{elapsed} >= delay";

    $t->api_set('slow404.example', '404', delay_ms => 300);
    $res = $t->http(port => $port, host => '127.0.0.1', path => '/v1/filing/slow404.example');
    is $res->{status}, 404, 'delay applies to fixed modes too';
    cmp_ok $res->{elapsed}, '>=', 0.3, "elapsed $res->{elapsed} >= delay";

    $t->api_default('filed', delay_ms => 200);
    $res = $t->http(port => $port, host => '127.0.0.1', path => '/v1/filing/default-delay.example');
    cmp_ok $res->{elapsed}, '>=', 0.2, 'default delay_ms';
    $t->api_default('404');

    $t->api_set('hang.example', 'hang');
    $res = $t->http(port => $port, host => '127.0.0.1', path => '/v1/filing/hang.example', timeout => 1);
    is $res->{status}, 0, 'hang: no answer';
    ok $res->{timed_out}, 'hang: the client timed out';
    cmp_ok $res->{elapsed}, '>=', 0.9, 'hang: after the timeout';
};

subtest 'counts and headers' => sub {
    my $port = $t->api_port;
    $t->api_reset;
    is $t->api_total, 0, 'reset clears the total';
    is $t->api_count('example.com'), 0, 'reset clears counts';
    is $t->api_count('never.example'), 0, 'unknown domain counts 0';

    for (1 .. 3) {
        $t->http(port => $port, host => 'api.test', path => '/v1/filing/example.com',
                 headers => [['X-Icp-Test', "req$_"], ['User-Agent', 'harness']]);
    }
    $t->http(port => $port, host => 'api.test', path => '/v1/filing/other.example');
    is $t->api_count('example.com'), 3, 'count per domain';
    is $t->api_total, 4, 'total';
    is_deeply $t->api_counts, { 'example.com' => 3, 'other.example' => 1 }, 'counts';

    my $h = $t->api_headers('example.com');
    is $h->{'x-icp-test'}, 'req3', 'last request headers, lower-cased names';
    is $h->{host}, 'api.test', 'Host header recorded';
    is $h->{'user-agent'}, 'harness', 'User-Agent recorded';
    is_deeply $t->api_headers('never.example'), {}, 'no headers for an unseen domain';

    is $t->http(port => $port, host => '127.0.0.1', path => '/_control/count?domain=example.com')->{body},
        '3', 'count endpoint is plain text';

    $t->api_reset;
    is $t->api_total, 0, 'reset';
    is $json->decode($t->http(port => $port, host => '127.0.0.1',
                              path => '/v1/filing/example.com')->{body})->{status},
        'filed', 'reset keeps modes';
    $t->api_clear;
    is $t->api_total, 0, 'clear clears counts';
    is $t->http(port => $port, host => '127.0.0.1', path => '/v1/filing/example.com')->{status},
        404, 'clear forgets modes';
};

subtest 'concurrency' => sub {
    my $port = $t->api_port;
    $t->api_set('par.example', 'filed', delay_ms => 500);
    my $start = time;
    my $statuses = $t->http_parallel(100, port => $port, host => '127.0.0.1',
                                     path => '/v1/filing/par.example', timeout => 20);
    my $took = time - $start;
    is scalar @$statuses, 100, '100 results';
    is_deeply [grep { $_ != 200 } @$statuses], [], 'all 100 answered 200';
    is $t->api_count('par.example'), 100, 'all 100 counted';
    cmp_ok $took, '<', 10, "served concurrently (took ${\ sprintf '%.2f', $took} s for 100 x 0.5 s)";
};

subtest 'http client' => sub {
    my $closed = IcpGate::Test->new->port('nothing');    # nothing listens there
    my $res = $t->http(port => $closed, host => 'x');
    is $res->{status}, 0, 'status 0 when the connection fails';
    ok $res->{error}, 'with an error';

    # a tiny one-shot server to see what the client sends and how it parses
    my $srv = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 5,
                                    Timeout => 10)
        or die "listen: $@";
    my $p = $srv->sockport;
    my $pid = fork // die;
    if ($pid == 0) {
        for my $answer ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\nX-A: 2\r\n\r\n"
                          . "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
                        "HTTP/1.1 204 No Content\r\n\r\n") {
            my $c = $srv->accept or last;
            my $req = '';
            while ($req !~ /\r\n\r\n/) { sysread($c, $req, 4096, length $req) or last }
            open(my $fh, q{>>}, $t->dir . q{/requests}) or die;
            print $fh $req, "\0";
            close $fh;
            syswrite $c, $answer;
            close $c;
        }
        POSIX::_exit(0);
    }
    close $srv;

    $res = $t->http(port => $p, path => '/a?b=c', headers => [['X-One', '1']]);
    is $res->{status}, 200, 'chunked response';
    is $res->{body}, 'hello world', 'chunked body decoded';
    is $res->{headers}{'x-a'}, '1, 2', 'repeated headers joined';
    like $res->{raw}, qr/^HTTP\/1\.1 200 OK\r\n/, 'raw response kept';

    $res = $t->http(port => $p, host => 'Example.COM:8080', method => 'HEAD', version => 'HTTP/1.1');
    is $res->{status}, 204, 'no content';
    waitpid $pid, 0;

    my ($first, $second) = split /\0/, $t->read_file('requests');
    is $first, "GET /a?b=c HTTP/1.0\r\nX-One: 1\r\nConnection: close\r\n\r\n",
        'no host: HTTP/1.0 without Host';
    is $second, "HEAD / HTTP/1.1\r\nHost: Example.COM:8080\r\nConnection: close\r\n\r\n",
        'host sent verbatim';
};

subtest 'files, logs and crash detection' => sub {
    my $u = IcpGate::Test->new;
    open(my $fh, '>:encoding(UTF-8)', $u->dir . '/access.json') or die;
    print $fh qq({"host":"a.example","result":"deny"}\n\nnot json\n{"icp":"京ICP备1号"}\n[1]\n);
    close $fh;
    my @lines = $u->log_lines('access.json');
    is scalar @lines, 4, 'one entry per non-empty line';
    is_deeply $lines[0], { host => 'a.example', result => 'deny' }, 'JSON object';
    is_deeply $lines[1], { __invalid => 'not json' }, 'invalid line';
    is $lines[2]{icp}, '京ICP备1号', 'UTF-8 decoded';
    is_deeply $lines[3], { __invalid => '[1]' }, 'non-object line is invalid';
    is_deeply [$u->log_lines('missing.json')], [], 'missing file: no lines';
    is $u->read_file('missing.json'), undef, 'read_file of a missing file is undef';

    is $u->error_log, '', 'no error log yet';
    is_deeply [$u->crashes], [], 'no crashes in an empty dir';
    open($fh, '>', $u->dir . '/error.log') or die;
    print $fh "2024/01/01 00:00:00 [notice] 1#1: worker process 11 exited with code 0\n",
              "2024/01/01 00:00:00 [alert] 1#1: worker process 12 exited on signal 11 (core dumped)\n",
              "2024/01/01 00:00:00 [alert] 1#1: worker process 13 exited with code 1\n",
              "2024/01/01 00:00:00 [info] 1#1: signal 17 (SIGCHLD) received from 11\n";
    close $fh;
    open($fh, '>', $u->dir . '/asan.1234') or die;
    print $fh "==1234==ERROR: AddressSanitizer: heap-use-after-free\n";
    close $fh;
    my @crashes = $u->crashes;
    is scalar @crashes, 3, 'two crash lines and one sanitizer file';
    like $crashes[0], qr/exited on signal 11/, 'signal exit';
    like $crashes[1], qr/exited with code 1/, 'non-zero exit';
    like $crashes[2], qr/^asan\.1234:\n.*heap-use-after-free/s, 'asan file content';

    my $n = 0;
    is $u->wait_for(sub { ++$n >= 3 ? "done$n" : 0 }, 5), 'done3', 'wait_for returns the last value';
    my $start = time;
    ok !$u->wait_for(sub { 0 }, 0.3), 'wait_for gives up';
    cmp_ok time - $start, '>=', 0.3, '... after the timeout';

    my $dir = $u->dir;
    undef $u;
    ok !-e $dir, 'temp dir removed when the object goes away';
};

subtest 'preset and a second harness object' => sub {
    my $u = IcpGate::Test->new;
    isnt $u->api_port, $t->api_port, 'another object, another api port';
    $u->start_api(default => 'pending',
                  preset => { 'Preset.example' => { mode => 'filed', icp => '粤ICP备1号', region => 'global' },
                              'slow.example'   => { mode => 'revoked', delay_ms => 200 } });
    my $get = sub ($d) {
        my $res = $u->http(port => $u->api_port, host => 'x', path => "/v1/filing/$d");
        return ($json->decode($res->{body}), $res->{elapsed});
    };
    is_deeply(($get->('preset.example'))[0],
        { domain => 'preset.example', status => 'filed', icp => '粤ICP备1号', region => 'global' },
        'preset entry');
    my ($body, $elapsed) = $get->('slow.example');
    is $body->{status}, 'revoked', 'preset mode';
    cmp_ok $elapsed, '>=', 0.2, 'preset delay_ms';
    is(($get->('other.example'))[0]{status}, 'pending', '--default');

    my ($api, $dir) = ($u->api_pid, $u->dir);
    $u->cleanup;
    ok !$t->alive($api), 'cleanup killed the api stand-in';
    ok !-e $dir, 'cleanup removed the temp dir';
};

subtest 'gated: services, modes and config in one call' => sub {
    my $g = IcpGate::Test->gated(
        redis => 1,
        api => { 'filed.example' => 'filed',
                 'slow.example' => ['revoked', delay_ms => 200] },
        api_default => 'pending',
        conf => { main => 'icp_gate_ttl 1h;' },
        nginx => 0);
    isa_ok $g, 'IcpGate::Test';
    is $g->redis('PING'), 'PONG', 'redis => 1 started redis';
    ok $g->api_pid, 'api started the filing api';
    my $get = sub ($d) {
        return $g->http(port => $g->api_port, host => 'x', path => "/v1/filing/$d");
    };
    is $json->decode($get->('filed.example')->{body})->{status}, 'filed', 'api: a mode';
    my $res = $get->('slow.example');
    is $json->decode($res->{body})->{status}, 'revoked', 'api: a mode with extras';
    cmp_ok $res->{elapsed}, '>=', 0.2, '... and its delay_ms';
    is $json->decode($get->('other.example')->{body})->{status}, 'pending', 'api_default';

    my $conf = $g->read_file('nginx.conf') // '';
    like $conf, qr/^icp_gate_ttl 1h;$/m, 'conf => {...}: gate_conf with its options';
    like $conf, qr/listen 127\.0\.0\.1:${\ $g->port('http')};/, '... placeholders substituted';
    ok -f $g->dir . '/html/index.html', '... with the pages it serves';
    ok !$g->nginx_pid, 'nginx => 0: nginx not started';

    my $text = IcpGate::Test->gated(api_default => ['filed', delay_ms => 100],
                                    conf => "http { %%HTTP_PORT%% }\n", nginx => 0);
    ok $text->api_pid && !$text->redis_pid, 'api_default alone starts the api, no redis';
    cmp_ok $text->http(port => $text->api_port, host => 'x',
                       path => '/v1/filing/any.example')->{elapsed},
        '>=', 0.1, 'api_default with extras';
    is $text->read_file('nginx.conf'),
        $text->conf_prelude . 'http { ' . $text->port('http') . " }\n",
        'conf => TEXT: the prelude, then TEXT with placeholders substituted';

    my $bare = IcpGate::Test->gated;
    ok !$bare->redis_pid && !$bare->api_pid, 'nothing asked: nothing started';
    is $bare->read_file('nginx.conf'), undef, '... and no config written';
    ok !eval { IcpGate::Test->gated(reddis => 1); 1 }, 'an unknown option dies';
    like $@, qr/unknown option reddis/, '... naming it';
};

subtest 'nothing outlives a test that dies or is killed' => sub {
    for my $how ('die "boom\n"', 'kill TERM => $$; sleep 10', 'kill INT => $$; sleep 10') {
        my $script = 'use IcpGate::Test; my $t = IcpGate::Test->new; $t->start_redis; $t->start_api; '
                   . 'print join(" ", $t->redis_pid, $t->api_pid, $t->dir), "\n"; STDOUT->flush; '
                   . $how;
        my $pid = open(my $out, '-|') // die "fork: $!";
        if ($pid == 0) {
            open STDERR, '>', '/dev/null';
            exec $^X, "-I$FindBin::Bin/lib", '-e', $script or POSIX::_exit(127);
        }
        my ($redis, $api, $dir) = split ' ', (<$out> // '');
        close $out;
        ok $redis && $api, "child started redis and api ($how)";
        ok !$t->alive($redis), '... redis is gone';
        ok !$t->alive($api), '... api is gone';
        ok $dir && !-e $dir, '... temp dir is gone';
    }
};

subtest 'nginx lifecycle (only when nginx is built)' => sub {
    plan skip_all => 'no nginx binary at ' . $t->nginx_bin unless -x $t->nginx_bin;
    my $n = IcpGate::Test->new;
    $n->write_conf($n->conf_prelude . <<~'CONF');
        http {
            access_log %%DIR%%/access.log;
            server {
                listen 127.0.0.1:%%HTTP_PORT%%;
                location / { add_header X-Host $host; empty_gif; }
            }
        }
        CONF
    my ($code, $out) = $n->nginx_test;
    is $code, 0, 'nginx -t' or diag $out;
    like $out, qr/test is successful/, 'nginx -t output captured';

    my $master = $n->start_nginx;
    ok $n->alive($master), "master $master runs";
    my @workers = $n->worker_pids;
    is scalar @workers, 2, "two workers (@workers)";
    my $res = $n->http(host => 'Example.COM');
    is $res->{status}, 200, 'request served';
    is $res->{headers}{'x-host'}, 'example.com', 'Host reached nginx';
    is_deeply $n->http_parallel(20, host => 'x'), [(200) x 20], 'parallel requests';

    ok $n->reload, 'reload';
    my @new = $n->worker_pids;
    is scalar @new, 2, 'two new workers';
    is_deeply [grep { my $w = $_; grep { $_ == $w } @workers } @new], [], 'all workers replaced';
    ok $n->reopen, 'reopen';
    ok $n->stop_nginx, 'stop_nginx: quit gracefully';
    ok !$n->alive($master), 'master gone';
    ok !(grep { $n->alive($_) } @new), 'workers gone';
    IcpGate::Test::done_cleanly($n);

    my $bad = IcpGate::Test->new;
    $bad->write_conf($bad->conf_prelude . "http { no_such_directive; }\n");
    ($code, $out) = $bad->nginx_test;
    isnt $code, 0, 'nginx -t fails on a bad config';
    ok !eval { $bad->start_nginx; 1 }, 'start_nginx dies on a bad config';
    like $@, qr/no_such_directive/, '... with what nginx said';
};

subtest 'gated starts nginx, finish stops it (only when nginx is built)' => sub {
    plan skip_all => 'no nginx binary at ' . $t->nginx_bin unless -x $t->nginx_bin;
    my $g = IcpGate::Test->gated(redis => 1, api => { 'filed.cn' => 'filed' }, conf => {});
    ok $g->nginx_pid && $g->alive($g->nginx_pid), 'a config: nginx started';
    is $g->get('live.filed.cn')->{status}, 200, 'it gates with the modes set';
    is $g->get('live.other.cn')->{headers}{'x-reason'}, 'unfiled', '... and refuses';
    ok $g->wait_for(sub { $g->redis('HGET', 'icp:domain:filed.cn', 'status') eq 'filed' }),
        '... and writes to the redis started for it';
    ok $g->stop_nginx, 'stops';

    # finish ends the plan, so it runs in a test file of its own
    my $script = 'use Test::More; use IcpGate::Test; '
               . 'my $t = IcpGate::Test->gated(api => {}, conf => { redis => "" }); '
               . 'my $pid = $t->nginx_pid; $t->finish; '
               . 'print "# master ", ($t->alive($pid) ? "alive" : "gone"), "\n";';
    my $pid = open(my $out, '-|') // die "fork: $!";
    if ($pid == 0) {
        open STDERR, '>&', \*STDOUT;
        exec $^X, "-I$FindBin::Bin/lib", '-e', $script or POSIX::_exit(127);
    }
    my $tap = do { local $/; <$out> } // '';
    close $out;
    is $?, 0, 'finish: the test file passes' or diag $tap;
    like $tap, qr/^ok 1 - no crash or sanitizer report$/m, '... with the crash check';
    like $tap, qr/^1\.\.1$/m, '... and the plan';
    like $tap, qr/^# master gone$/m, '... nginx stopped by finish';
};

subtest 'stop_redis' => sub {
    my $pid = $t->redis_pid;
    $t->stop_redis;
    ok !$t->alive($pid), 'redis-server killed';
    ok !$t->redis_pid, 'no redis pid any more';
};

$t->finish;
