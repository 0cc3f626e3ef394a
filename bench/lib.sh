# Helpers shared by bench/run.sh and bench/ab.sh (sourced, not run).

# A free TCP port on loopback.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# nginx_conf DIR MOCK_PORT LISTEN_PORT [ACCESS_LOG_DIRECTIVE]
# Writes DIR/nginx.conf: nginx as a plain reverse proxy in front of the mock,
# the way both benchmarks run it (worker_processes auto, upstream keepalive,
# proxy_buffering off, keepalive_requests raised on both sides, access log off
# unless a directive is given). Run it with -p DIR -c DIR/nginx.conf.
nginx_conf() {
    local dir=$1 mock_port=$2 port=$3 access=${4:-access_log off;} user=
    [ "$(id -u)" -eq 0 ] && user="user root;"
    mkdir -p "$dir/nginx-tmp"
    cat >"$dir/nginx.conf" <<CONF
$user
worker_processes auto;
pid $dir/nginx.pid;
error_log $dir/nginx-error.log warn;
events { worker_connections 4096; }
http {
    $access
    client_body_temp_path $dir/nginx-tmp/body;
    proxy_temp_path $dir/nginx-tmp/proxy;
    fastcgi_temp_path $dir/nginx-tmp/fastcgi;
    uwsgi_temp_path $dir/nginx-tmp/uwsgi;
    scgi_temp_path $dir/nginx-tmp/scgi;
    keepalive_requests 1000000;
    upstream mock {
        server 127.0.0.1:$mock_port;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$port;
        location / {
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }
    }
}
CONF
}

# proc_ticks PID: "utime stime" clock ticks of one process (fields 14 and 15
# of /proc/PID/stat); nothing if it is gone.
proc_ticks() {
    local rest
    rest=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    rest=${rest##*) }            # drop "pid (comm) ": comm may hold spaces
    set -- $rest                 # $1 is field 3 (state), so utime=$12, stime=$13
    echo "${12} ${13}"
}
