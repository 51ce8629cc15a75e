from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("jobqueue", "0005_job_ready_at"),
    ]

    operations = [
        migrations.AddField(
            model_name="queue",
            name="poison_entries",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="queue",
            name="last_poison",
            field=models.TextField(blank=True, default=""),
        ),
    ]
