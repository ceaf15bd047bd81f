(function(){ "use strict"; })();
