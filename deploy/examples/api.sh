#!/bin/sh
# The admin API from a shell. GATEHOUSE is the server's URL; TOKEN is an API token from
#   gatehouse token create automation --scope users:read --scope users:write \
#     --scope groups:read --scope groups:write --scope credentials:write
set -eu
api() { curl -sS --fail-with-body -H "Authorization: Bearer $TOKEN" "$@"; }

# An invitation script: the new user goes straight into one group.
api -X POST "$GATEHOUSE/api/v1/users" -H 'Content-Type: application/json' \
  -d '{"username": "grandma", "email": "grandma@example.com", "display_name": "Grandma", "groups": ["Family"]}'

# A job that reads one group's members: a read that fails is an error (curl exits
# non-zero), never an empty list.
api "$GATEHOUSE/api/v1/groups/Family/members?effective=true" | jq -r '.items[].username'

# Change a user only if nobody else has changed them since this script read them:
# a stale If-Match is refused with 412.
etag=$(api -o /dev/null -D - "$GATEHOUSE/api/v1/users/grandma" | tr -d '\r' | sed -n 's/^[Ee][Tt]ag: //p')
api -X PATCH "$GATEHOUSE/api/v1/users/grandma" -H "If-Match: $etag" -H 'Content-Type: application/json' \
  -d '{"display_name": "Granny"}'

# An app password for Grandma's phone calendar, good for the CalDAV host only (a rule
# there has allow_app_passwords: true). Its secret is in this answer and nowhere else.
api -X POST "$GATEHOUSE/api/v1/users/grandma/app-passwords" -H 'Content-Type: application/json' \
  -d '{"name": "phone calendar", "hosts": ["dav.example.com"]}' | jq -r .password

# Grandma has no password yet: a one-time link (24 hours) that signs her in once to
# set one or add a passkey. Send it to her privately.
api -X POST "$GATEHOUSE/api/v1/users/grandma/signin-link" | jq -r .url
