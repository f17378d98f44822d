# nginx.conf for the c2 frontend proxy, rendered from c2's built-in template
# (`c2 show-default-nginx-config`). Context: see adl/nginx.adl.
worker_processes auto;

events {
  worker_connections 1024;
}

http {
  # Websocket upgrades pass through; plain requests keep connections alive.
  map $http_upgrade $connection_upgrade {
    default upgrade;
    ''      close;
  }

  server_names_hash_bucket_size 128;

  proxy_http_version 1.1;
  proxy_set_header Host $host;
  proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
  proxy_set_header X-Forwarded-Proto $scheme;
  proxy_set_header Upgrade $http_upgrade;
  proxy_set_header Connection $connection_upgrade;
  proxy_send_timeout 300s;
  proxy_read_timeout 300s;

  server {
    listen {{httpPort}} default_server;
    server_name _;
{{#healthCheck}}
    location {{{incomingPath}}} {
      proxy_pass http://localhost:{{outgoingPort}}{{{outgoingPath}}};
    }
{{/healthCheck}}
    location / {
      return 404;
    }
  }
{{#endPoints}}
{{#http}}

  server {
    listen {{httpPort}};
    server_name {{{serverNames}}};
{{#port}}
    location / {
      proxy_pass http://localhost:{{port}};
    }
{{/port}}
{{^port}}
    location / {
      return 503;
    }
{{/port}}
  }
{{/http}}
{{#https}}

  server {
    listen {{httpPort}};
    server_name {{{serverNames}}};
    location /.well-known/acme-challenge {
      root {{{letsencryptWwwDir}}};
    }
    location / {
      return 301 https://$host:{{httpsPort}}$request_uri;
    }
  }
{{#sslCertPath}}
{{#sslCertKeyPath}}

  server {
    listen {{httpsPort}} ssl;
    server_name {{{serverNames}}};
    ssl_certificate {{{sslCertPath}}};
    ssl_certificate_key {{{sslCertKeyPath}}};
{{#port}}
    location / {
      proxy_pass http://localhost:{{port}};
    }
{{/port}}
{{^port}}
    location / {
      return 503;
    }
{{/port}}
  }
{{/sslCertKeyPath}}
{{/sslCertPath}}
{{/https}}
{{/endPoints}}
}
