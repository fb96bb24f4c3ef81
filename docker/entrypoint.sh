#!/bin/sh
# One image, three roles: web (migrate, install the beat schedule, gunicorn), worker, beat.
set -eu
role="${1:-web}"
# A deployment names its own secret key (the checkout's random local key is not shared by the
# web, worker and beat containers); a weak one already stops the settings.
: "${SECRET_KEY:?SECRET_KEY must be set}"
# Every role first runs Django's deployment checks and refuses to start on an error; warnings are
# printed and do not stop it.
python manage.py check --deploy --fail-level ERROR
case "$role" in
  web)
    python manage.py migrate --noinput
    # creates the default beat jobs that are missing; jobs staff edited in the admin are kept
    # (`install_schedule --reset` by hand writes the defaults back)
    python manage.py install_schedule
    python manage.py collectstatic --noinput >/dev/null
    exec gunicorn shop.wsgi:application --config python:shop.gunicorn_conf --bind 0.0.0.0:8000 \
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
