(function () {
  document.querySelectorAll(".compare").forEach(function (box) {
    var slider = box.querySelector(".slider");
    if (slider) {
      var update = function () { box.style.setProperty("--pos", slider.value + "%"); };
      slider.addEventListener("input", update);
      update();
    }
    box.querySelectorAll("img").forEach(function (img) {
      var broken = function () {
        img.classList.add("failed");
        box.classList.add("broken");
        box.setAttribute("data-missing", img.classList.contains("before") ? "before" : "after");
      };
      img.addEventListener("error", broken);
    });
  });
})();
