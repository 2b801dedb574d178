<?php
// The guestbook example: one front controller (nginx sends every path that
// is not a file here). Config comes from getenv(); entries are kept in a
// file under $HOP3_SHARED_DIR, which survives deploys.

const NAME = 'php-guestbook';

function version(): string
{
    return trim(file_get_contents(__DIR__ . '/VERSION'));
}

function text(int $status, string $body): void
{
    http_response_code($status);
    header('Content-Type: text/plain; charset=utf-8');
    echo $body;
}

function json(int $status, $data): void
{
    http_response_code($status);
    header('Content-Type: application/json');
    echo json_encode($data);
}

function entries_file(): string
{
    return getenv('HOP3_SHARED_DIR') . '/guestbook.jsonl';
}

function entries(): array
{
    $lines = @file(entries_file(), FILE_IGNORE_NEW_LINES | FILE_SKIP_EMPTY_LINES) ?: [];
    return array_map(fn ($line) => json_decode($line, true), $lines);
}

function add_entry(string $name, string $message): void
{
    $line = json_encode(['name' => $name, 'message' => $message, 'time' => gmdate('c')]);
    file_put_contents(entries_file(), $line . "\n", FILE_APPEND | LOCK_EX);
}

function page(): void
{
    $greeting = getenv('APP_GREETING') ?: 'Sign the guestbook';
    header('Content-Type: text/html; charset=utf-8');
    $h = fn ($value) => htmlspecialchars((string) $value, ENT_QUOTES);
    echo '<!doctype html><title>' . $h(NAME) . '</title>';
    echo '<link rel="stylesheet" href="/style.css">';
    echo '<h1>' . $h($greeting) . '</h1><p>' . $h(NAME . ' v' . version()) . '</p><ul>';
    foreach (entries() as $entry) {
        echo '<li><b>' . $h($entry['name']) . '</b>: ' . $h($entry['message']) . '</li>';
    }
    echo '</ul><form method="post" action="/guestbook">';
    echo '<input name="name" placeholder="Name"> <input name="message" placeholder="Message">';
    echo ' <button>Sign</button></form>';
}

$path = parse_url($_SERVER['REQUEST_URI'] ?? '/', PHP_URL_PATH);
$method = $_SERVER['REQUEST_METHOD'] ?? 'GET';

if ($path === '/' || $path === '/index.php') {
    text(200, 'Hello from ' . NAME . ' v' . version());
} elseif ($path === '/health') {
    text(200, 'ok');
} elseif (preg_match('#^/config/([A-Za-z0-9_]+)$#', $path, $match)) {
    $value = getenv('APP_' . $match[1]);
    $value === false ? text(404, 'not set') : text(200, $value);
} elseif ($path === '/whoami') {
    json(200, [
        'pid' => getmypid(),
        'port' => (int) getenv('PORT'),
        'user' => posix_getpwuid(posix_geteuid())['name'],
        'release' => getenv('HOP3_RELEASE') ?: null,
    ]);
} elseif ($path === '/guestbook' && $method === 'POST') {
    $name = trim($_POST['name'] ?? '');
    $message = trim($_POST['message'] ?? '');
    if ($name === '' || $message === '') {
        text(400, 'name and message are required');
    } else {
        add_entry($name, $message);
        http_response_code(303);
        header('Location: /guestbook');
    }
} elseif ($path === '/guestbook') {
    page();
} elseif ($path === '/entries') {
    json(200, entries());
} else {
    text(404, 'not found');
}
