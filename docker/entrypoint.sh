#!/bin/sh
# One image, three roles: web (migrate, install the beat schedule, gunicorn), worker, beat.
set -eu
role="${1:-web}"
case "$role" in
  web)
    python manage.py migrate --noinput
    # creates the default beat jobs that are missing; jobs staff edited in the admin are kept
    # (`install_schedule --reset` by hand writes the defaults back)
    python manage.py install_schedule
    python manage.py collectstatic --noinput >/dev/null
    exec gunicorn shop.wsgi:application --bind 0.0.0.0:8000 \
      --workers "${WEB_WORKERS:-3}" --timeout 30 --access-logfile -
    ;;
  worker)
    exec celery -A shop worker --loglevel INFO --queues celery,training \
      --concurrency "${WORKER_CONCURRENCY:-2}" --prefetch-multiplier 1
    ;;
  beat)
    exec celery -A shop beat --loglevel INFO \
      --scheduler django_celery_beat.schedulers:DatabaseScheduler
    ;;
  *)
    exec "$@"
    ;;
esac
