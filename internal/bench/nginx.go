package bench

import "fmt"

// NginxMain is the main config for Debian's nginx started by hand from a folder of its
// own (nginx -p dir): one worker, every temporary path and the pid file in dir, and the
// server blocks included from dir/site.conf. An access log in dir when accessLog is
// set (the proxy tests read it); none otherwise, as measurements want.
func NginxMain(dir string, connections int, accessLog bool) string {
	log := "off"
	if accessLog {
		log = dir + "/access.log"
	}
	return fmt.Sprintf(`pid %[1]s/nginx.pid;
worker_processes 1;
events { worker_connections %[2]d; }
http {
    access_log %[3]s;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    include %[1]s/site.conf;
}
`, dir, connections, log)
}
