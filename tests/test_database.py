"""Runs on SQLite and, in CI, on PostgreSQL (-m database)."""

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

pytestmark = [pytest.mark.database, pytest.mark.django_db]


def test_migrations_applied_and_admin_answers(client):
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(user)
    response = client.get("/admin/")
    assert response.status_code == 200
    assert connection.vendor in ("sqlite", "postgresql")
