#!/usr/bin/env bash
# One database per service, each owned by a login role of the same name; no service can connect to another's.
#
# Run once by the postgres image from /docker-entrypoint-initdb.d when the data volume is empty
# (docker-compose.yml mounts this directory there). Passwords come from the container's environment:
#   MEMBERS_DB_PASSWORD, MEETINGS_DB_PASSWORD, NOTIFICATIONS_DB_PASSWORD, GATEWAY_DB_PASSWORD
# The image runs it as the superuser POSTGRES_USER against a server listening on the unix socket only.
# To rerun it (e.g. new passwords), remove the volume, or apply the same statements by hand.
set -euo pipefail

# All four first, so a missing one fails before anything is created.
members_pw="${MEMBERS_DB_PASSWORD:?set MEMBERS_DB_PASSWORD}"
meetings_pw="${MEETINGS_DB_PASSWORD:?set MEETINGS_DB_PASSWORD}"
notifications_pw="${NOTIFICATIONS_DB_PASSWORD:?set NOTIFICATIONS_DB_PASSWORD}"
gateway_pw="${GATEWAY_DB_PASSWORD:?set GATEWAY_DB_PASSWORD}"

create_service_db() {
    local name="$1" password="$2"
    # psql's :'var' quotes the value as an SQL literal and :"var" as an identifier: no injection via passwords.
    psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
        -v name="$name" -v password="$password" <<-'EOSQL'
	CREATE ROLE :"name" LOGIN PASSWORD :'password';
	CREATE DATABASE :"name" OWNER :"name" ENCODING 'UTF8' TEMPLATE template0;
	REVOKE ALL ON DATABASE :"name" FROM PUBLIC;
EOSQL
}

create_service_db members "$members_pw"
create_service_db meetings "$meetings_pw"
create_service_db notifications "$notifications_pw"
create_service_db gateway "$gateway_pw"
