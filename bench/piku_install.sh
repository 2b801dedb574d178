#!/bin/sh
# Install Piku on a Debian 12 host, as root, the way Piku's own bootstrap does:
# Debian packages, a `piku` user (group www-data) running piku.py, Piku's
# uWSGI emperor unit, its nginx default site (which includes the apps'
# configs) and its path unit that reloads nginx when they change.
# Piku's files (unmodified) and the controller's public key are in $1.
# Idempotent: a second run changes nothing that matters.
set -eu
src=$1

export DEBIAN_FRONTEND=noninteractive
if ! dpkg -s nginx uwsgi uwsgi-plugin-python3 python3-virtualenv python3-click git >/dev/null 2>&1; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends \
        git nginx uwsgi uwsgi-plugin-python3 python3-virtualenv python3-click python3-pip \
        >/dev/null
fi

id piku >/dev/null 2>&1 || adduser --disabled-password --gecos piku --ingroup www-data piku >/dev/null
install -o piku -g www-data -m 0755 "$src/piku.py" /home/piku/piku.py

# Piku's unit runs /usr/local/bin/uwsgi-piku (its bootstrap's wrapper around uwsgi).
printf '#!/bin/sh\nexec /usr/bin/uwsgi "$@"\n' > /usr/local/bin/uwsgi-piku
chmod 0755 /usr/local/bin/uwsgi-piku
install -m 0644 "$src/uwsgi-piku.service" "$src/piku-nginx.path" "$src/piku-nginx.service" \
    /etc/systemd/system/
install -m 0644 "$src/nginx.default.dist" /etc/nginx/sites-available/default
ln -sf /etc/nginx/sites-available/default /etc/nginx/sites-enabled/default

su - piku -c 'python3 ~/piku.py setup' >/dev/null
if ! grep -qF "$(cut -d' ' -f2 "$src/controller.pub")" /home/piku/.ssh/authorized_keys 2>/dev/null; then
    su - piku -c "python3 ~/piku.py setup:ssh $src/controller.pub" >/dev/null
fi

systemctl daemon-reload
systemctl enable --now uwsgi-piku.service piku-nginx.path >/dev/null 2>&1
systemctl restart nginx
systemctl is-active --quiet uwsgi-piku nginx
