// A fake V4L2 camera for the tests: an LD_PRELOAD shim over open, ioctl, mmap,
// munmap and close for one /dev/videoN, which OpenCV's V4L2 backend calls straight
// from glibc. The device's file descriptor is an eventfd that a producer thread
// signals once per frame, so select() and poll() wait for frames as on a camera.
//
// Set by environment variables (read at the first open):
//   FAKE_V4L2_DEVICE        the path it answers for, e.g. /dev/video7 (required)
//   FAKE_V4L2_FORMATS       what it offers, the first being the default:
//                           MJPG:1280x720,YUYV:640x480,YUYV:320x240; a size may add
//                           the frame rates it offers, e.g. MJPG:640x480@30/15 (what
//                           VIDIOC_ENUM_FRAMEINTERVALS answers; frames still come at FPS)
//   FAKE_V4L2_FPS           frames per second (default 30)
//   FAKE_V4L2_JPEGS         a folder of .jpg files sent in name order, in a loop, as MJPG
//   FAKE_V4L2_UNPLUG_AFTER  after this many frames the camera is unplugged: the open
//                           descriptor fails with ENODEV and opening fails with ENOENT
//   FAKE_V4L2_UNPLUGGED     a file that stands for "unplugged": the shim creates it at
//                           the unplug, and the camera is back once it is removed
//   FAKE_V4L2_BUSY          1: opening fails with EBUSY (another program has it)
//   FAKE_V4L2_DENIED        1: opening fails with EACCES (no permission)
//   FAKE_V4L2_METADATA      1: it is a metadata node (a UVC camera's second one), no picture
//   FAKE_V4L2_HIDE_REAL     1: every other /dev/video* fails with ENOENT, so what a test
//                           sees does not depend on the cameras of the machine it runs on
// Built by the tests with the system compiler: cc -shared -fPIC -O2 -o fake-v4l2.so fake-v4l2.c -ldl -lpthread
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/videodev2.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_FORMATS 8
#define MAX_BUFFERS 8
#define MAX_JPEGS 256
#define MAX_RATES 8

struct format {
  uint32_t fourcc;
  uint32_t width, height;
  unsigned rates[MAX_RATES];  // frames per second offered at this size; none: FAKE_V4L2_FPS
  int rateCount;
};

struct jpeg {
  unsigned char* data;
  size_t size;
};

// One open descriptor of the device.
struct device {
  int fd;  // the eventfd handed to the caller
  pthread_mutex_t lock;
  pthread_t producer;
  int streaming;
  int stop;
  int gone;  // unplugged while open: everything fails with ENODEV
  struct format current;
  uint32_t sizeimage;
  uint32_t count;  // buffers requested
  int memfd;
  unsigned char* memory;  // the shim's own mapping of every buffer
  size_t stride;          // bytes between buffers in memfd (page aligned)
  int queued[MAX_BUFFERS];
  int done[MAX_BUFFERS];  // FIFO of filled buffer indices
  uint32_t doneCount;
  uint32_t bytesused[MAX_BUFFERS];
  uint32_t sequence[MAX_BUFFERS];
  struct timeval stamp[MAX_BUFFERS];
  uint32_t frame;
};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int (*real_open)(const char*, int, ...);
static int (*real_close)(int);
static int (*real_ioctl)(int, unsigned long, ...);
static void* (*real_mmap)(void*, size_t, int, int, int, off_t);
static int (*real_munmap)(void*, size_t);

static const char* devicePath;
static struct format formats[MAX_FORMATS];
static int formatCount;
static unsigned fps = 30;
static struct jpeg jpegs[MAX_JPEGS];
static int jpegCount;
static size_t jpegMax;
static long unplugAfter = -1;
static const char* unpluggedFile;
static int busy;
static int denied;
static int metadata;
static int hideReal;
static long framesDelivered;  // across opens, for FAKE_V4L2_UNPLUG_AFTER
static pthread_mutex_t globalLock = PTHREAD_MUTEX_INITIALIZER;

#define MAX_OPEN 4
static struct device* devices[MAX_OPEN];

static int cmpName(const void* a, const void* b) { return strcmp(*(char* const*)a, *(char* const*)b); }

static void loadJpegs(const char* dir) {
  DIR* d = opendir(dir);
  if (!d) return;
  char* names[MAX_JPEGS];
  int n = 0;
  struct dirent* e;
  while ((e = readdir(d)) && n < MAX_JPEGS) {
    size_t len = strlen(e->d_name);
    if (len > 4 && strcmp(e->d_name + len - 4, ".jpg") == 0) names[n++] = strdup(e->d_name);
  }
  closedir(d);
  qsort(names, n, sizeof names[0], cmpName);
  for (int i = 0; i < n; i++) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    free(names[i]);
    FILE* f = fopen(path, "rb");
    if (!f) continue;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char* data = size > 0 ? malloc(size) : NULL;
    if (data && fread(data, 1, size, f) == (size_t)size) {
      jpegs[jpegCount].data = data;
      jpegs[jpegCount].size = size;
      if ((size_t)size > jpegMax) jpegMax = size;
      jpegCount++;
    } else {
      free(data);
    }
    fclose(f);
  }
}

static void init(void) {
  real_open = dlsym(RTLD_NEXT, "open");
  real_close = dlsym(RTLD_NEXT, "close");
  real_ioctl = dlsym(RTLD_NEXT, "ioctl");
  real_mmap = dlsym(RTLD_NEXT, "mmap");
  real_munmap = dlsym(RTLD_NEXT, "munmap");
  devicePath = getenv("FAKE_V4L2_DEVICE");
  const char* list = getenv("FAKE_V4L2_FORMATS");
  if (!list) list = "YUYV:640x480";
  char copy[512];
  snprintf(copy, sizeof copy, "%s", list);
  for (char* save = NULL, *tok = strtok_r(copy, ",", &save); tok && formatCount < MAX_FORMATS; tok = strtok_r(NULL, ",", &save)) {
    char code[5] = {0};
    unsigned w = 0, h = 0;
    if (sscanf(tok, "%4[A-Z0-9]:%ux%u", code, &w, &h) == 3 && strlen(code) == 4 && w > 0 && h > 0) {
      struct format* f = &formats[formatCount++];
      *f = (struct format){v4l2_fourcc(code[0], code[1], code[2], code[3]), w, h, {0}, 0};
      for (char* r = strchr(tok, '@'); r && f->rateCount < MAX_RATES; r = strchr(r + 1, '/')) {
        int rate = atoi(r + 1);
        if (rate > 0) f->rates[f->rateCount++] = (unsigned)rate;
      }
    }
  }
  const char* f = getenv("FAKE_V4L2_FPS");
  if (f && atoi(f) > 0) fps = (unsigned)atoi(f);
  const char* j = getenv("FAKE_V4L2_JPEGS");
  if (j) loadJpegs(j);
  const char* u = getenv("FAKE_V4L2_UNPLUG_AFTER");
  if (u) unplugAfter = atol(u);
  unpluggedFile = getenv("FAKE_V4L2_UNPLUGGED");
  const char* b = getenv("FAKE_V4L2_BUSY");
  busy = b && strcmp(b, "1") == 0;
  const char* a = getenv("FAKE_V4L2_DENIED");
  denied = a && strcmp(a, "1") == 0;
  const char* m = getenv("FAKE_V4L2_METADATA");
  metadata = m && strcmp(m, "1") == 0;
  const char* hide = getenv("FAKE_V4L2_HIDE_REAL");
  hideReal = hide && strcmp(hide, "1") == 0;
}

static int unplugged(void) {
  struct stat st;
  return unpluggedFile && stat(unpluggedFile, &st) == 0;
}

static struct device* find(int fd) {
  if (fd < 0) return NULL;
  pthread_mutex_lock(&globalLock);
  struct device* found = NULL;
  for (int i = 0; i < MAX_OPEN; i++) {
    if (devices[i] && devices[i]->fd == fd) found = devices[i];
  }
  pthread_mutex_unlock(&globalLock);
  return found;
}

// Another open descriptor holds buffers: it owns the buffer queue, and a driver (vb2,
// uvcvideo) refuses buffer requests from any other descriptor with EBUSY meanwhile.
static int queueOwnedElsewhere(struct device* d) {
  pthread_mutex_lock(&globalLock);
  int owned = 0;
  for (int i = 0; i < MAX_OPEN; i++) {
    struct device* o = devices[i];
    if (o && o != d && o->count > 0 && !o->gone) owned = 1;
  }
  pthread_mutex_unlock(&globalLock);
  return owned;
}

static uint32_t imageSize(const struct format* f) {
  if (f->fourcc == V4L2_PIX_FMT_MJPEG) return jpegMax > 0 ? (uint32_t)jpegMax : f->width * f->height * 2;
  return f->width * f->height * 2;
}

static void setFormat(struct device* d, const struct format* f) {
  d->current = *f;
  d->sizeimage = imageSize(f);
}

// Fills buffer `index` with frame number d->frame in the current format.
static void fill(struct device* d, int index) {
  unsigned char* p = d->memory + d->stride * index;
  if (d->current.fourcc == V4L2_PIX_FMT_MJPEG) {
    if (jpegCount == 0) {
      d->bytesused[index] = 0;
      return;
    }
    const struct jpeg* j = &jpegs[d->frame % jpegCount];
    size_t n = j->size < d->sizeimage ? j->size : d->sizeimage;
    memcpy(p, j->data, n);
    d->bytesused[index] = (uint32_t)n;
    return;
  }
  // YUYV: a horizontal luma ramp with a bright bar that moves down a row per frame.
  uint32_t w = d->current.width, h = d->current.height;
  uint32_t bar = (d->frame * 4) % h;
  for (uint32_t y = 0; y < h; y++) {
    unsigned char* row = p + (size_t)y * w * 2;
    int inBar = y >= bar && y < bar + 8;
    for (uint32_t x = 0; x < w; x += 2) {
      unsigned char luma = inBar ? 235 : (unsigned char)(16 + (x * 200) / w);
      row[2 * x] = luma;
      row[2 * x + 1] = 128;
      row[2 * x + 2] = luma;
      row[2 * x + 3] = 128;
    }
  }
  d->bytesused[index] = w * h * 2;
}

static void notify(struct device* d, uint64_t n) {
  ssize_t ignored = write(d->fd, &n, sizeof n);
  (void)ignored;
}

static void* produce(void* arg) {
  struct device* d = arg;
  struct timespec next;
  clock_gettime(CLOCK_MONOTONIC, &next);
  long interval = 1000000000L / fps;
  for (;;) {
    next.tv_nsec += interval;
    while (next.tv_nsec >= 1000000000L) {
      next.tv_nsec -= 1000000000L;
      next.tv_sec++;
    }
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
    pthread_mutex_lock(&d->lock);
    if (d->stop) {
      pthread_mutex_unlock(&d->lock);
      return NULL;
    }
    pthread_mutex_lock(&globalLock);
    int unplugNow = unplugAfter >= 0 && framesDelivered >= unplugAfter;
    if (unplugNow) unplugAfter = -1;  // once
    pthread_mutex_unlock(&globalLock);
    if (unplugNow || unplugged()) {
      if (unplugNow && unpluggedFile) {
        int f = real_open(unpluggedFile, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (f >= 0) real_close(f);
      }
      d->gone = 1;
      // Readable for good: the next DQBUF reports ENODEV, as a camera pulled out does.
      notify(d, 1u << 20);
      pthread_mutex_unlock(&d->lock);
      return NULL;
    }
    for (uint32_t i = 0; i < d->count; i++) {
      if (!d->queued[i]) continue;
      d->queued[i] = 0;
      fill(d, (int)i);
      d->sequence[i] = d->frame++;
      struct timespec now;
      clock_gettime(CLOCK_MONOTONIC, &now);
      d->stamp[i].tv_sec = now.tv_sec;
      d->stamp[i].tv_usec = now.tv_nsec / 1000;
      d->done[d->doneCount++] = (int)i;
      pthread_mutex_lock(&globalLock);
      framesDelivered++;
      pthread_mutex_unlock(&globalLock);
      notify(d, 1);
      break;
    }
    pthread_mutex_unlock(&d->lock);
  }
}

static void stopStreaming(struct device* d) {
  pthread_mutex_lock(&d->lock);
  int was = d->streaming;
  d->stop = 1;
  pthread_mutex_unlock(&d->lock);
  if (was) pthread_join(d->producer, NULL);
  pthread_mutex_lock(&d->lock);
  d->streaming = 0;
  d->stop = 0;
  d->doneCount = 0;
  for (int i = 0; i < MAX_BUFFERS; i++) d->queued[i] = 0;
  // Drain the eventfd: no frame is pending any more.
  uint64_t n;
  while (read(d->fd, &n, sizeof n) > 0) {
  }
  pthread_mutex_unlock(&d->lock);
}

static void freeBuffers(struct device* d) {
  if (d->memory) real_munmap(d->memory, d->stride * d->count);
  if (d->memfd >= 0) real_close(d->memfd);
  d->memory = NULL;
  d->memfd = -1;
  d->count = 0;
}

static const struct format* pick(uint32_t fourcc, uint32_t width, uint32_t height) {
  const struct format* best = NULL;
  long bestScore = 0;
  for (int i = 0; i < formatCount; i++) {
    if (formats[i].fourcc != fourcc) continue;
    long score = labs((long)formats[i].width - (long)width) + labs((long)formats[i].height - (long)height);
    if (!best || score < bestScore) {
      best = &formats[i];
      bestScore = score;
    }
  }
  // A format it does not have: a driver answers with one it has.
  return best ? best : &formats[0];
}

static void describe(struct device* d, struct v4l2_format* f) {
  memset(&f->fmt.pix, 0, sizeof f->fmt.pix);
  f->fmt.pix.width = d->current.width;
  f->fmt.pix.height = d->current.height;
  f->fmt.pix.pixelformat = d->current.fourcc;
  f->fmt.pix.field = V4L2_FIELD_NONE;
  f->fmt.pix.bytesperline = d->current.fourcc == V4L2_PIX_FMT_MJPEG ? 0 : d->current.width * 2;
  f->fmt.pix.sizeimage = d->sizeimage;
  f->fmt.pix.colorspace = V4L2_COLORSPACE_SRGB;
}

static int fail(int err) {
  errno = err;
  return -1;
}

static int fakeIoctl(struct device* d, unsigned long request, void* arg) {
  if (d->gone) return fail(ENODEV);
  switch (request) {
    case VIDIOC_QUERYCAP: {
      struct v4l2_capability* c = arg;
      memset(c, 0, sizeof *c);
      snprintf((char*)c->driver, sizeof c->driver, "fake-v4l2");
      snprintf((char*)c->card, sizeof c->card, "lancam test camera");
      snprintf((char*)c->bus_info, sizeof c->bus_info, "fake:%s", devicePath);
      c->version = 0x050a00;
      c->device_caps = (metadata ? V4L2_CAP_META_CAPTURE : V4L2_CAP_VIDEO_CAPTURE) | V4L2_CAP_STREAMING;
      c->capabilities = c->device_caps | V4L2_CAP_DEVICE_CAPS;
      return 0;
    }
    case VIDIOC_G_INPUT:
      *(int*)arg = 0;
      return 0;
    case VIDIOC_S_INPUT:
      return *(int*)arg == 0 ? 0 : fail(EINVAL);
    case VIDIOC_ENUMINPUT: {
      struct v4l2_input* in = arg;
      if (in->index != 0) return fail(EINVAL);
      memset(in, 0, sizeof *in);
      snprintf((char*)in->name, sizeof in->name, "Camera 1");
      in->type = V4L2_INPUT_TYPE_CAMERA;
      return 0;
    }
    case VIDIOC_ENUM_FMT: {
      struct v4l2_fmtdesc* f = arg;
      if (f->type != V4L2_BUF_TYPE_VIDEO_CAPTURE) return fail(EINVAL);
      // Each FOURCC once, in the order first offered.
      uint32_t seen[MAX_FORMATS];
      uint32_t n = 0;
      for (int i = 0; i < formatCount; i++) {
        int dup = 0;
        for (uint32_t k = 0; k < n; k++) dup |= seen[k] == formats[i].fourcc;
        if (!dup) seen[n++] = formats[i].fourcc;
      }
      if (f->index >= n) return fail(EINVAL);
      uint32_t code = seen[f->index];
      uint32_t index = f->index;
      memset(f, 0, sizeof *f);
      f->index = index;
      f->type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
      f->pixelformat = code;
      f->flags = code == V4L2_PIX_FMT_MJPEG ? V4L2_FMT_FLAG_COMPRESSED : 0;
      snprintf((char*)f->description, sizeof f->description, "%s", code == V4L2_PIX_FMT_MJPEG ? "Motion-JPEG" : "YUYV 4:2:2");
      return 0;
    }
    case VIDIOC_ENUM_FRAMESIZES: {
      struct v4l2_frmsizeenum* s = arg;
      uint32_t k = 0;
      for (int i = 0; i < formatCount; i++) {
        if (formats[i].fourcc != s->pixel_format) continue;
        if (k++ == s->index) {
          s->type = V4L2_FRMSIZE_TYPE_DISCRETE;
          s->discrete.width = formats[i].width;
          s->discrete.height = formats[i].height;
          return 0;
        }
      }
      return fail(EINVAL);
    }
    case VIDIOC_ENUM_FRAMEINTERVALS: {
      // The rates of the size asked about; a size it does not offer is an error, as on a driver.
      struct v4l2_frmivalenum* v = arg;
      for (int i = 0; i < formatCount; i++) {
        const struct format* f = &formats[i];
        if (f->fourcc != v->pixel_format || f->width != v->width || f->height != v->height) continue;
        int count = f->rateCount > 0 ? f->rateCount : 1;
        if (v->index >= (uint32_t)count) return fail(EINVAL);
        v->type = V4L2_FRMIVAL_TYPE_DISCRETE;
        v->discrete.numerator = 1;
        v->discrete.denominator = f->rateCount > 0 ? f->rates[v->index] : fps;
        return 0;
      }
      return fail(EINVAL);
    }
    case VIDIOC_G_FMT: {
      struct v4l2_format* f = arg;
      if (f->type != V4L2_BUF_TYPE_VIDEO_CAPTURE) return fail(EINVAL);
      describe(d, f);
      return 0;
    }
    case VIDIOC_TRY_FMT:
    case VIDIOC_S_FMT: {
      struct v4l2_format* f = arg;
      if (f->type != V4L2_BUF_TYPE_VIDEO_CAPTURE) return fail(EINVAL);
      if (d->streaming || d->count > 0) return fail(EBUSY);
      const struct format* chosen = pick(f->fmt.pix.pixelformat, f->fmt.pix.width, f->fmt.pix.height);
      if (request == VIDIOC_S_FMT) {
        setFormat(d, chosen);
        describe(d, f);
      } else {
        struct format keep = d->current;
        uint32_t keepSize = d->sizeimage;
        setFormat(d, chosen);
        describe(d, f);
        d->current = keep;
        d->sizeimage = keepSize;
      }
      return 0;
    }
    case VIDIOC_G_PARM:
    case VIDIOC_S_PARM: {
      struct v4l2_streamparm* p = arg;
      if (p->type != V4L2_BUF_TYPE_VIDEO_CAPTURE) return fail(EINVAL);
      memset(&p->parm.capture, 0, sizeof p->parm.capture);
      p->parm.capture.capability = V4L2_CAP_TIMEPERFRAME;
      p->parm.capture.timeperframe.numerator = 1;
      p->parm.capture.timeperframe.denominator = fps;
      return 0;
    }
    case VIDIOC_REQBUFS: {
      struct v4l2_requestbuffers* r = arg;
      if (r->type != V4L2_BUF_TYPE_VIDEO_CAPTURE || r->memory != V4L2_MEMORY_MMAP) return fail(EINVAL);
      if (d->streaming || queueOwnedElsewhere(d)) return fail(EBUSY);
      freeBuffers(d);
      if (r->count == 0) return 0;
      uint32_t count = r->count > MAX_BUFFERS ? MAX_BUFFERS : r->count;
      long page = sysconf(_SC_PAGESIZE);
      size_t stride = ((size_t)d->sizeimage + page - 1) / page * page;
      int memfd = memfd_create("fake-v4l2", MFD_CLOEXEC);
      if (memfd < 0 || ftruncate(memfd, (off_t)(stride * count)) != 0) {
        if (memfd >= 0) real_close(memfd);
        return fail(ENOMEM);
      }
      void* memory = real_mmap(NULL, stride * count, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
      if (memory == MAP_FAILED) {
        real_close(memfd);
        return fail(ENOMEM);
      }
      d->memfd = memfd;
      d->memory = memory;
      d->stride = stride;
      d->count = count;
      r->count = count;
      return 0;
    }
    case VIDIOC_QUERYBUF:
    case VIDIOC_QBUF: {
      struct v4l2_buffer* b = arg;
      if (b->type != V4L2_BUF_TYPE_VIDEO_CAPTURE || b->index >= d->count) return fail(EINVAL);
      if (request == VIDIOC_QBUF) {
        pthread_mutex_lock(&d->lock);
        d->queued[b->index] = 1;
        pthread_mutex_unlock(&d->lock);
      }
      b->memory = V4L2_MEMORY_MMAP;
      b->length = d->sizeimage;
      b->m.offset = (uint32_t)(d->stride * b->index);
      b->flags = request == VIDIOC_QBUF ? V4L2_BUF_FLAG_QUEUED | V4L2_BUF_FLAG_MAPPED : V4L2_BUF_FLAG_MAPPED;
      return 0;
    }
    case VIDIOC_DQBUF: {
      struct v4l2_buffer* b = arg;
      if (b->type != V4L2_BUF_TYPE_VIDEO_CAPTURE) return fail(EINVAL);
      pthread_mutex_lock(&d->lock);
      if (d->gone) {
        pthread_mutex_unlock(&d->lock);
        return fail(ENODEV);
      }
      if (d->doneCount == 0) {
        pthread_mutex_unlock(&d->lock);
        return fail(EAGAIN);
      }
      int index = d->done[0];
      memmove(d->done, d->done + 1, sizeof d->done[0] * (--d->doneCount));
      uint64_t n;
      ssize_t ignored = read(d->fd, &n, sizeof n);  // one frame less pending (semaphore mode)
      (void)ignored;
      b->index = (uint32_t)index;
      b->memory = V4L2_MEMORY_MMAP;
      b->length = d->sizeimage;
      b->m.offset = (uint32_t)(d->stride * index);
      b->bytesused = d->bytesused[index];
      b->sequence = d->sequence[index];
      b->timestamp = d->stamp[index];
      b->field = V4L2_FIELD_NONE;
      b->flags = V4L2_BUF_FLAG_MAPPED | V4L2_BUF_FLAG_DONE | V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC;
      pthread_mutex_unlock(&d->lock);
      return 0;
    }
    case VIDIOC_STREAMON: {
      pthread_mutex_lock(&d->lock);
      int start = !d->streaming && d->count > 0;
      if (start) {
        d->streaming = 1;
        d->stop = 0;
      }
      pthread_mutex_unlock(&d->lock);
      if (d->count == 0) return fail(EINVAL);
      if (start && pthread_create(&d->producer, NULL, produce, d) != 0) {
        d->streaming = 0;
        return fail(ENOMEM);
      }
      return 0;
    }
    case VIDIOC_STREAMOFF:
      stopStreaming(d);
      return 0;
    default:
      return fail(EINVAL);
  }
}

int open(const char* path, int flags, ...) {
  pthread_once(&once, init);
  mode_t mode = 0;
  if (flags & (O_CREAT | O_TMPFILE)) {
    va_list ap;
    va_start(ap, flags);
    mode = va_arg(ap, mode_t);
    va_end(ap);
  }
  if (!devicePath || strcmp(path, devicePath) != 0) {
    if (hideReal && strncmp(path, "/dev/video", strlen("/dev/video")) == 0) return fail(ENOENT);
    return real_open(path, flags, mode);
  }
  if (unplugged() || formatCount == 0) return fail(ENOENT);
  if (denied) return fail(EACCES);
  if (busy) return fail(EBUSY);
  struct device* d = calloc(1, sizeof *d);
  if (!d) return fail(ENOMEM);
  d->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK | EFD_SEMAPHORE);
  if (d->fd < 0) {
    free(d);
    return -1;
  }
  d->memfd = -1;
  pthread_mutex_init(&d->lock, NULL);
  setFormat(d, &formats[0]);
  pthread_mutex_lock(&globalLock);
  int slot = -1;
  for (int i = 0; i < MAX_OPEN && slot < 0; i++) {
    if (!devices[i]) slot = i;
  }
  if (slot >= 0) devices[slot] = d;
  pthread_mutex_unlock(&globalLock);
  if (slot < 0) {
    real_close(d->fd);
    free(d);
    return fail(EMFILE);
  }
  return d->fd;
}

int close(int fd) {
  pthread_once(&once, init);
  struct device* d = find(fd);
  if (!d) return real_close(fd);
  stopStreaming(d);
  freeBuffers(d);
  pthread_mutex_lock(&globalLock);
  for (int i = 0; i < MAX_OPEN; i++) {
    if (devices[i] == d) devices[i] = NULL;
  }
  pthread_mutex_unlock(&globalLock);
  int r = real_close(d->fd);
  pthread_mutex_destroy(&d->lock);
  free(d);
  return r;
}

int ioctl(int fd, unsigned long request, ...) {
  pthread_once(&once, init);
  va_list ap;
  va_start(ap, request);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  struct device* d = find(fd);
  if (!d) return real_ioctl(fd, request, arg);
  return fakeIoctl(d, request, arg);
}

void* mmap(void* addr, size_t length, int prot, int flags, int fd, off_t offset) {
  pthread_once(&once, init);
  struct device* d = find(fd);
  if (!d) return real_mmap(addr, length, prot, flags, fd, offset);
  if (d->gone) {
    errno = ENODEV;
    return MAP_FAILED;
  }
  if (d->memfd < 0 || offset < 0 || (size_t)offset + length > d->stride * d->count) {
    errno = EINVAL;
    return MAP_FAILED;
  }
  // A mapping of its own over the same pages: the caller may unmap it whenever it likes.
  return real_mmap(addr, length, prot, flags, d->memfd, offset);
}

int munmap(void* addr, size_t length) {
  pthread_once(&once, init);
  return real_munmap(addr, length);
}
