from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "marketplace.ops"
    label = "ops"
    verbose_name = "Operations"

    def ready(self) -> None:
        # Celery signal receivers (task metrics, order id in task logs, the worker heartbeat). Django is set up in
        # every worker process before these fire, so connecting here covers web and worker processes alike.
        from django.core.signals import request_finished

        from marketplace.ops import celery_signals
        from marketplace.ops.middleware import clear_request_id

        celery_signals.connect()
        request_finished.connect(clear_request_id, dispatch_uid="ops.clear_request_id")
